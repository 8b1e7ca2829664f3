// Hiding a program without help (issue 17): re-exec itself N times, each image with its
// generation in argv[1]. An exec line must show its own generation or null, never a later one.
//   reexec N [GENERATION]
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int n = atoi(argv[1]);
  int gen = argc > 2 ? atoi(argv[2]) : 0;
  if (gen >= n) return 0;
  char next[16];
  snprintf(next, sizeof next, "%d", gen + 1);
  execl("/proc/self/exe", "reexec", argv[1], next, (char *)0);
  return 1;
}
