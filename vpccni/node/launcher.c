/*
 * vpccni: the CNI plugin's launcher, the file the container runtime execs on the host.
 *
 * The host may have no Python, no shell and any glibc or none, and the directory this file is in is not
 * known when it is built. So it is linked statically (no loader of its own), finds its directory from
 * /proc/self/exe, and runs the payload's own loader, which loads the payload's interpreter and libraries
 * (see vpccni/node/payload.py for the layout):
 *
 *   <dir>/vpccni.d/<tree>/lib/ld.so --library-path <dir>/vpccni.d/<tree>/lib
 *       <dir>/vpccni.d/<tree>/bin/python -I -S -B -X utf8 <dir>/vpccni.d/<tree>/entry.py [args...]
 *
 * <tree> is what the relative symlink <dir>/vpccni.d/current names, read once here: an upgrade that switches
 * the symlink meanwhile cannot mix two trees in one run. The environment and stdin/stdout pass through
 * unchanged (the plugin reads CNI_* and the network configuration). If the payload cannot be started, a
 * CNI error (code 999) goes to stdout, where the runtime reads it, and the reason to stderr.
 *
 * Invoked by another name (a copy or symbolic link of this file called portmap, say) it runs the reference
 * plugin <tree>/cni/<name> instead, through the same loader and libraries: those are dynamically linked
 * against glibc too, and the host need not have one.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static const char *const python_flags[] = {"-I", "-S", "-B", "-X", "utf8"};
#define N_FLAGS (sizeof python_flags / sizeof python_flags[0])
#define MAX_ARGS 64

/* JSON string body: quotes, backslashes and control characters escaped. */
static void json_text(const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
}

static int fail(const char *what, const char *path, int err) {
    printf("{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"vpccni launcher: ");
    json_text(what);
    printf("\",\"details\":\"");
    json_text(path);
    printf(": ");
    json_text(strerror(err));
    printf("\"}\n");
    fflush(stdout);
    fprintf(stderr, "vpccni launcher: %s: %s: %s\n", what, path, strerror(err));
    return 1;
}

static int join(char *out, const char *dir, const char *rest) {
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, rest);
    return n > 0 && n < PATH_MAX ? 0 : -1;
}

/* The name we were invoked by: argv[0]'s last component (a symlink's own name), else our file's. */
static const char *invoked_as(int argc, char **argv, const char *self) {
    const char *path = argc > 0 && argv[0][0] ? argv[0] : self;
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int main(int argc, char **argv) {
    char self[PATH_MAX], link[PATH_MAX], name[NAME_MAX + 1], tree[PATH_MAX], program[PATH_MAX];
    char loader[PATH_MAX], libs[PATH_MAX], python[PATH_MAX], entry[PATH_MAX], cni[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n == (ssize_t)sizeof self - 1) return fail("path too long", "/proc/self/exe", ENAMETOOLONG);
    if (n > 0) {
        self[n] = '\0';
    } else if (argc > 0 && strchr(argv[0], '/') && strlen(argv[0]) < sizeof self) {
        strcpy(self, argv[0]); /* no /proc: the path we were exec'd by */
    } else {
        return fail("cannot tell where the launcher is", "/proc/self/exe", errno ? errno : ENOENT);
    }
    char *slash = strrchr(self, '/');
    if (!slash) return fail("cannot tell where the launcher is", self, ENOENT);
    if (snprintf(program, sizeof program, "%s", invoked_as(argc, argv, slash + 1)) >= (int)sizeof program)
        return fail("path too long", argv[0], ENAMETOOLONG);
    if (!program[0] || !strcmp(program, ".") || !strcmp(program, ".."))
        return fail("cannot tell which plugin to run", argv[0], EINVAL);
    *slash = '\0';
    if (join(link, self, "vpccni.d/current")) return fail("path too long", self, ENAMETOOLONG);
    n = readlink(link, name, sizeof name - 1);
    if (n <= 0) return fail("the payload is not installed", link, n < 0 ? errno : EINVAL);
    name[n] = '\0';
    /* One name inside vpccni.d, never a path out of it. */
    if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return fail("vpccni.d/current must name a directory beside it", link, EINVAL);
    if (snprintf(tree, sizeof tree, "%s/vpccni.d/%s", self, name) >= (int)sizeof tree ||
        join(loader, tree, "lib/ld.so") || join(libs, tree, "lib") || join(python, tree, "bin/python") ||
        join(entry, tree, "entry.py") || join(cni, tree, "cni/") ||
        strlen(cni) + strlen(program) >= sizeof cni)
        return fail("path too long", self, ENAMETOOLONG);
    strcat(cni, program);
    if (argc > MAX_ARGS) return fail("too many arguments", argv[0], E2BIG);

    char *args[5 + N_FLAGS + MAX_ARGS + 1];
    size_t i = 0;
    args[i++] = loader;
    args[i++] = "--library-path";
    args[i++] = libs;
    if (strcmp(program, "vpccni") == 0) {
        args[i++] = python;
        for (size_t f = 0; f < N_FLAGS; f++) args[i++] = (char *)python_flags[f];
        args[i++] = entry;
    } else if (access(cni, X_OK) == 0) {
        args[i++] = cni;
    } else {
        return fail("the payload has no plugin of this name", cni, errno);
    }
    for (int a = 1; a < argc; a++) args[i++] = argv[a];
    args[i] = NULL;
    execve(loader, args, environ);
    return fail("cannot run the payload's loader", loader, errno);
}
