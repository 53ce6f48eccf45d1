"""The init container's job: install the plugin payload, sysctls, conflist; may import vpccni.wire/config/net,
never ipamd or plugin."""
