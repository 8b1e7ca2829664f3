/* Does the kernel let this process listen to the proc connector? An independent check of
 * proctree's own answer: bind to CN_IDX_PROC, send PROC_CN_MCAST_LISTEN, wait 2 s for the ack.
 * Prints "allowed", or "refused: bind EPERM" / "refused: ack EPERM" / "no ack"; exits 0 when
 * allowed, 1 when refused, 2 otherwise. */
#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
  int fd = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_CONNECTOR);
  if (fd < 0) { printf("no socket: %s\n", strerror(errno)); return 2; }
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    printf("refused: bind %s\n", e == EPERM ? "EPERM" : strerror(e));
    return e == EPERM ? 1 : 2;
  }
  struct {
    struct nlmsghdr nl;
    struct cn_msg cn;
    enum proc_cn_mcast_op op;
  } __attribute__((packed)) req = {0};
  req.nl.nlmsg_len = sizeof req;
  req.nl.nlmsg_type = NLMSG_DONE;
  req.nl.nlmsg_pid = getpid();
  req.cn.id.idx = CN_IDX_PROC;
  req.cn.id.val = CN_VAL_PROC;
  req.cn.ack = 4242;
  req.cn.len = sizeof req.op;
  req.op = PROC_CN_MCAST_LISTEN;
  if (send(fd, &req, sizeof req, 0) != (ssize_t)sizeof req) {
    int e = errno;
    printf("refused: send %s\n", e == EPERM ? "EPERM" : strerror(e));
    return e == EPERM ? 1 : 2;
  }
  struct pollfd p = {.fd = fd, .events = POLLIN};
  char buf[4096];
  while (poll(&p, 1, 2000) > 0) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < (ssize_t)(sizeof(struct nlmsghdr) + sizeof(struct cn_msg) + sizeof(struct proc_event)))
      continue;
    struct cn_msg *cn = (struct cn_msg *)(buf + sizeof(struct nlmsghdr));
    struct proc_event *ev = (struct proc_event *)cn->data;
    if (ev->what != PROC_EVENT_NONE || cn->ack != 4243) continue;
    if (ev->event_data.ack.err == 0) { printf("allowed\n"); return 0; }
    printf("refused: ack %s\n", ev->event_data.ack.err == EPERM ? "EPERM" : strerror(ev->event_data.ack.err));
    return ev->event_data.ack.err == EPERM ? 1 : 2;
  }
  printf("no ack\n");
  return 2;
}
