/* Tries what a hostile build would do to get out of its sandbox; prints one line per
 * attempt: "NAME: refused (ERRNO)" or "NAME: ALLOWED". argv[1] is a process id on the
 * host, which the build must not be able to see. Built -m64 and -m32 (both system-call
 * tables must be covered). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void report(const char *name, long rc)
{
    if (rc == -1)
        printf("%s: refused (%s)\n", name, strerrorname_np(errno));
    else
        printf("%s: ALLOWED\n", name);
}

int main(int argc, char **argv)
{
    pid_t host = argc > 1 ? atoi(argv[1]) : 1;
    char path[64], buf[16];

    report("remount / read-write", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL));
    report("mount tmpfs", mount("none", "/tmp", "tmpfs", 0, NULL));
    report("umount /proc", umount2("/proc", MNT_DETACH));
    report("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
    report("chroot", chroot("/tmp"));
    report("unshare user namespace", unshare(CLONE_NEWUSER));
    report("unshare mount namespace", unshare(CLONE_NEWNS));
    int ns = open("/proc/self/ns/mnt", O_RDONLY);
    report("setns", setns(ns, 0));
    report("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
    report("add_key", syscall(SYS_add_key, "user", "x", "y", 1, -2));
    report("bpf", syscall(SYS_bpf, 0, NULL, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("init_module", syscall(SYS_init_module, NULL, 0, ""));
    report("sethostname", sethostname("evil", 4));
    report("reboot", reboot(RB_POWER_OFF));
    report("TIOCSTI", ioctl(0, TIOCSTI, "x"));
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    report("ptrace attach to its own child", ptrace(PTRACE_ATTACH, child, 0, 0));
    struct iovec local = {buf, sizeof buf}, remote = {buf, sizeof buf};
    report("process_vm_readv of its own child", process_vm_readv(child, &local, 1, &remote, 1, 0));
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    report("ptrace attach to a host process", ptrace(PTRACE_ATTACH, host, 0, 0));
    report("signal a host process", kill(host, 0));
    snprintf(path, sizeof path, "/proc/%d/environ", (int)host);
    report("read a host process's environment", open(path, O_RDONLY));
    snprintf(path, sizeof path, "/proc/%d/root/etc/hostname", (int)host);
    report("enter a host process's root", open(path, O_RDONLY));
    return 0;
}
