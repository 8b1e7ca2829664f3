// Thread reproducers for the false-exit cases (issue 17):
//   threads mainexit  - the main thread calls pthread_exit; another thread sleeps 0.5 s,
//                       starts `sleep 0.1` and waits for it, then exit(5)
//   threads threadexec [MS] - after MS ms (default 100), a non-main thread calls
//                       execv("/bin/sh", "-c", "sleep 0.2; true") while the main one sleeps
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *late_child(void *arg) {
  (void)arg;
  usleep(500000);
  pid_t c = fork();
  if (c == 0) {
    execl("/bin/sleep", "sleep", "0.1", (char *)0);
    _exit(127);
  }
  waitpid(c, 0, 0);
  exit(5);
}

static void *exec_from_thread(void *arg) {
  usleep(*(int *)arg * 1000);
  execl("/bin/sh", "sh", "-c", "sleep 0.2; true", (char *)0);
  return 0;
}

int main(int argc, char **argv) {
  pthread_t t;
  if (argc > 1 && strcmp(argv[1], "mainexit") == 0) {
    pthread_create(&t, 0, late_child, 0);
    pthread_exit(0);
  }
  if (argc > 1 && strcmp(argv[1], "threadexec") == 0) {
    static int delay_ms = 100;
    if (argc > 2) delay_ms = atoi(argv[2]);
    pthread_create(&t, 0, exec_from_thread, &delay_ms);
    sleep(5);
    return 1;
  }
  return 2;
}
