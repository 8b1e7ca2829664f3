/* Runs PROG with no arguments at all (argc 0): `argc0 PROG`. The kernel gives the new image
 * an empty argv[0] (Linux >= 5.18). */
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  char *none[] = {NULL};
  execve(argv[1], none, environ);
  return 127;
}
