/*
 * A process with hostile names, for the hostile-input tests: it re-executes itself with an
 * argv full of newlines, quotes, backslashes, terminal escapes, invalid UTF-8, an empty
 * string and 2 × 64 KiB of 'A', then renames itself (prctl) to a 15-byte name with the same
 * kinds of bytes once /proc has been read, and waits a little.
 *   hostile            the full argv
 *   hostile --empty    re-executes with an empty argv (the kernel supplies "")
 */
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static void hold(void) {
  /* Read first, renamed after: a rename before the read voids the read (issue 13). */
  usleep(100000);
  prctl(PR_SET_NAME, "n\nq\"b\\\x1b[31\xff", 0, 0, 0);
  usleep(300000);
  _exit(0);
}

int main(int argc, char **argv) {
  if (argc == 1 && argv[0] && argv[0][0] == 0) hold();
  if (argc > 1 && strcmp(argv[argc - 1], "--hold") == 0) hold();
  if (argc == 0) hold();
  usleep(100000); /* let the listener read this process first */
  if (argc > 1 && strcmp(argv[1], "--empty") == 0) {
    char *none[] = {NULL};
    execv("/proc/self/exe", none);
    return 1;
  }
  /* 128 KiB of argv in two strings: one string may not reach 128 KiB (MAX_ARG_STRLEN). */
  size_t n = 64 * 1024;
  char *big = malloc(n + 1);
  memset(big, 'A', n);
  big[n] = 0;
  char *args[] = {"evil\nline", "quo\"te", "back\\slash", "\x1b[31mred\x1b[0m", "\xff\xfeinvalid\xc3", "", big, big, "--hold", NULL};
  execv("/proc/self/exe", args);
  return 1;
}
