"""scripts/check_lock.py: an environment is compared with a lock by name and exact version."""

from __future__ import annotations

from scripts.check_lock import canonical, differences, read_lock


def test_a_pip_compile_lock_is_read_by_normalised_name(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("#\n# header\n#\nPyYAML==6.0.4 \\\n    --hash=sha256:00\n    # via moto\n"
                    "typing_extensions==4.16.0 \\\n    --hash=sha256:11\n")
    assert read_lock(lock) == {"pyyaml": "6.0.4", "typing-extensions": "4.16.0"}
    assert canonical("Foo_Bar.baz") == canonical("foo-bar-baz") == "foo-bar-baz"


def test_every_kind_of_difference_is_named_and_the_project_itself_is_not():
    lock = {"boto3": "1.44.8", "moto": "5.2.6", "six": "1.17.0"}
    have = {"boto3": "1.44.8", "moto": "5.2.7", "sympy": "1.14", "vpccni": "0.1.0"}
    assert differences(lock, have) == [
        "moto: lock says 5.2.6, installed 5.2.7",
        "six==1.17.0 is in the lock but not installed",
        "sympy==1.14 is installed but not in the lock",
    ]
    assert differences(lock, {**lock, "vpccni": "0.1.0"}) == []
