/* An execve that opens a file and fails, then one that succeeds, in the same process.
 * usage: failexec noexec|e2big BAD GOOD — noexec: BAD is not executable content (ENOEXEC);
 * e2big: BAD is a valid program, exec'd with arguments past the kernel's limit (E2BIG, after
 * the kernel opened it). Exits 3 when the first exec did not fail as intended. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  char *bad[] = {argv[2], NULL, NULL};
  int want = ENOEXEC;
  if (strcmp(argv[1], "e2big") == 0) {
    size_t n = 3u << 20; /* one 3 MiB argument: over MAX_ARG_STRLEN (128 KiB) */
    char *big = malloc(n);
    memset(big, 'x', n - 1);
    big[n - 1] = 0;
    bad[1] = big;
    want = E2BIG;
  }
  execv(argv[2], bad);
  if (errno != want) return 3;
  char *good[] = {argv[3], NULL};
  execv(argv[3], good);
  return 4;
}
