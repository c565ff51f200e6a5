/* appliance-grow: at first boot, the root partition grows to the end of its disk and the
 * mounted ext4 root file system grows to fill it, online, with nothing but this program
 * (no resize2fs, no growpart, no sfdisk: the image has none of them).
 *
 *   appliance-grow            at boot (/etc/init.d/rcS, right after / is remounted rw): once;
 *                             later boots only say it was done (the state file)
 *   appliance-grow --force    again, whatever the state file says (nothing changes when the
 *                             root already fills the disk)
 *   appliance-grow [--force] MOUNTPOINT
 *                             the same for the partition and ext4 file system holding
 *                             MOUNTPOINT instead of / (a network-booted appliance: its data
 *                             partition, /var/lib/appliance-os); the same state file
 *   appliance-grow --image FILE [--partition N] [--write]
 *                             the partition step alone on a disk image file whose size is
 *                             the disk's: what it would do (or, with --write, does) to the MBR
 *
 * At boot (the root, or the file system holding the mount point given):
 *  1. its device: stat("/") -> /sys/dev/block/MAJ:MIN -> a partition (its number, first
 *     sector, length) of a disk (its length, its logical sector size: 512 bytes only)
 *  2. the MBR: the root's entry must be a primary Linux partition (type 0x83), the last one on
 *     the disk, and what the kernel uses; a GUID partition table (protective entry 0xEE) or an
 *     extended partition is left alone. The entry keeps its start; its length reaches the end
 *     of the disk, or 2 TiB (2^32 sectors, as far as an MBR entry addresses) on a larger disk
 *  3. the kernel learns the partition's new length (BLKPG_RESIZE_PARTITION), as growpart does
 *  4. the mounted ext4 grows to the end of the partition (EXT4_IOC_RESIZE_FS, what resize2fs
 *     does online); a root that is a whole device (no partition) gets only this step
 *  5. one line on the console says what changed (or why nothing did) and goes into
 *     /var/lib/appliance-grow/done, which makes later boots skip (a later run by hand
 *     replaces that line only when it changed something)
 *
 * Each step looks at what is there first, so running it again changes nothing. A step that
 * fails (an I/O error, an ioctl the kernel refuses) does not mark it done: the next boot tries
 * again. All disk formats look the same from here: the guest sees a plain disk of the
 * virtual size (a VHD's footer, a VMDK's or qcow2's metadata are not part of it). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <linux/blkpg.h>

#ifndef EXT4_IOC_RESIZE_FS
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)
#endif
#define EXT4_SUPER_MAGIC 0xEF53
#define EXT4_FEATURE_INCOMPAT_64BIT 0x80
#define SECTOR 512u
#define MIB (1024u * 1024u)
#define MIB_SECTORS (MIB / SECTOR)
#define MBR_END 0x100000000ULL /* an MBR entry's end: 2^32 sectors, 2 TiB */
#define STATE_DIR "/var/lib/appliance-grow"
#define STATE_FILE STATE_DIR "/done"

enum outcome { GROW, NOTHING, REFUSE };

/* what grows: "/" (the root), or the file system holding another mount point */
static const char *mountpoint = "/";
static int is_root = 1;

struct plan {
    int index;                         /* the root's MBR entry, 0-3 */
    uint64_t start, old_len, new_len;  /* sectors */
    char why[512];                     /* NOTHING, REFUSE: the reason; GROW: a note, or "" */
};

static unsigned long long mib(uint64_t bytes)
{
    return (unsigned long long)(bytes / MIB);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = v & 0xFF;
    p[1] = (v >> 8) & 0xFF;
    p[2] = (v >> 16) & 0xFF;
    p[3] = (v >> 24) & 0xFF;
}

static enum outcome say(struct plan *p, enum outcome o, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum outcome say(struct plan *p, enum outcome o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, sizeof p->why, fmt, ap);
    va_end(ap);
    return o;
}

static int is_extended(int type)
{
    return type == 0x05 || type == 0x0F || type == 0x85;
}

/* CHS of a sector with 255 heads and 63 sectors per track, clamped past cylinder 1023
 * (the same as appbuild writes) */
static void chs(uint64_t lba, unsigned char out[3])
{
    uint64_t cylinder = lba / (255 * 63);
    if (cylinder > 1023) {
        out[0] = 0xFE, out[1] = 0xFF, out[2] = 0xFF;
        return;
    }
    out[0] = (lba / 63) % 255;
    out[1] = (unsigned char)((lba % 63 + 1) | ((cylinder >> 2) & 0xC0));
    out[2] = cylinder & 0xFF;
}

/* What to do with partition partno (1-4) of an MBR on a disk of disk_len sectors. start and
 * len are the kernel's view of the partition (sectors), which the entry must match; len 0:
 * no kernel view (an image file). */
static enum outcome plan_mbr(const unsigned char *mbr, int partno, uint64_t start, uint64_t len, uint64_t disk_len,
                             struct plan *p)
{
    memset(p, 0, sizeof *p);
    if (mbr[510] != 0x55 || mbr[511] != 0xAA)
        return say(p, REFUSE, "the disk has no MBR (no 55 AA signature)");
    for (int i = 0; i < 4; i++) {
        int type = mbr[446 + 16 * i + 4];
        if (type == 0xEE)
            return say(p, REFUSE, "the disk has a GUID partition table (protective MBR entry): only MBR disks are grown");
        if (is_extended(type))
            return say(p, REFUSE, "partition %d is an extended partition (type 0x%02x): not handled", i + 1, type);
    }
    if (partno < 1 || partno > 4)
        return is_root ? say(p, REFUSE, "the root is partition %d, not a primary partition (1-4)", partno)
                       : say(p, REFUSE, "%s is on partition %d, not a primary partition (1-4)", mountpoint, partno);
    const unsigned char *e = mbr + 446 + 16 * (partno - 1);
    uint64_t s = le32(e + 8), n = le32(e + 12);
    p->index = partno - 1;
    p->start = s;
    p->old_len = p->new_len = n;
    if (e[4] == 0 || n == 0)
        return say(p, REFUSE, "MBR entry %d is empty", partno);
    if (len && (s != start || n != len))
        return say(p, REFUSE, "MBR entry %d (sector %" PRIu64 ", %" PRIu64 " sectors) is not the partition the kernel "
                   "uses (sector %" PRIu64 ", %" PRIu64 " sectors)", partno, s, n, start, len);
    if (e[4] != 0x83)
        return say(p, REFUSE, "partition %d has type 0x%02x, not Linux (0x83)", partno, e[4]);
    for (int i = 0; i < 4; i++) {
        const unsigned char *o = mbr + 446 + 16 * i;
        uint64_t os = le32(o + 8), on = le32(o + 12);
        if (i == partno - 1 || o[4] == 0 || on == 0)
            continue;
        if (os >= s)
            return say(p, REFUSE, "partition %d (from sector %" PRIu64 ") lies after %s%s: only the "
                       "last partition on the disk is grown", i + 1, os,
                       is_root ? "the root partition" : "the partition of ", is_root ? "" : mountpoint);
        if (os + on > s)
            return say(p, REFUSE, "partition %d overlaps %s%s", i + 1,
                       is_root ? "the root partition" : "the partition of ", is_root ? "" : mountpoint);
    }
    if (s + n > disk_len)
        return say(p, REFUSE, "partition %d ends past the end of the disk (sector %" PRIu64 " of %" PRIu64 ")", partno,
                   s + n, disk_len);
    uint64_t end = disk_len < MBR_END ? disk_len : MBR_END;
    p->new_len = end - s;
    if (p->new_len > 0xFFFFFFFFu)
        p->new_len = 0xFFFFFFFFu;
    if (p->new_len <= n)
        return say(p, NOTHING, "already at the end of the disk");
    if (p->new_len - n < MIB_SECTORS) {
        uint64_t gain = p->new_len - n;
        p->new_len = n;
        return say(p, NOTHING, "%" PRIu64 " sectors from the end of the disk: less than 1 MiB to gain", gain);
    }
    if (disk_len > MBR_END)
        say(p, GROW, "the disk is %llu GiB; an MBR partition ends at 2 TiB: the rest stays unused",
            (unsigned long long)(disk_len / (1024 * 1024 * 2)));
    return GROW;
}

static void apply_plan(unsigned char *mbr, const struct plan *p)
{
    unsigned char *e = mbr + 446 + 16 * p->index;
    put_le32(e + 12, (uint32_t)p->new_len);
    chs(p->start + p->new_len - 1, e + 5);
}

/* ------------------------------------------------------------------ sysfs and device nodes */

static int read_text(const char *dir, const char *name, char *out, size_t len)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, out, len - 1);
    close(fd);
    if (n < 0)
        return -1;
    out[n] = 0;
    return 0;
}

static int read_u64(const char *dir, const char *name, uint64_t *value)
{
    char text[64], *end;
    if (read_text(dir, name, text, sizeof text) < 0)
        return -1;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || (*end && *end != '\n'))
        return -1;
    *value = v;
    return 0;
}

/* open the block device a sysfs directory describes: /dev/NAME when it is that device,
 * else a private node made for the moment; its name goes to name */
static int open_device(const char *sysdir, int flags, char *name, size_t namelen)
{
    char text[4096], node[PATH_MAX];
    unsigned maj, min;
    if (read_text(sysdir, "dev", text, sizeof text) < 0 || sscanf(text, "%u:%u", &maj, &min) != 2) {
        errno = ENODEV;
        return -1;
    }
    dev_t dev = makedev(maj, min);
    char devname[256] = "";
    if (read_text(sysdir, "uevent", text, sizeof text) == 0) {
        char *line = strstr(text, "DEVNAME=");
        if (line)
            sscanf(line + 8, "%255[^\n]", devname);
    }
    if (!devname[0]) {
        char copy[PATH_MAX];
        snprintf(copy, sizeof copy, "%s", sysdir);
        snprintf(devname, sizeof devname, "%s", basename(copy));
    }
    snprintf(node, sizeof node, "/dev/%s", devname);
    snprintf(name, namelen, "%s", node);
    int fd = open(node, flags | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == dev)
        return fd;
    if (fd >= 0)
        close(fd);
    snprintf(node, sizeof node, "/dev/.appliance-grow-%u-%u", maj, min);
    unlink(node);
    if (mknod(node, S_IFBLK | 0600, dev) < 0)
        return -1;
    fd = open(node, flags | O_CLOEXEC);
    int saved = errno;
    unlink(node);
    errno = saved;
    return fd;
}

/* ------------------------------------------------------------------ ext4 */

struct ext4_size {
    uint64_t blocks;
    uint32_t block_size;
    int bits64;
};

static int read_superblock(int fd, struct ext4_size *out, char *err, size_t errlen)
{
    unsigned char sb[1024];
    if (pread(fd, sb, sizeof sb, 1024) != (ssize_t)sizeof sb) {
        snprintf(err, errlen, "cannot read the ext4 superblock: %s", strerror(errno ? errno : EIO));
        return -1;
    }
    if ((sb[0x38] | sb[0x39] << 8) != EXT4_SUPER_MAGIC) {
        if (is_root)
            snprintf(err, errlen, "no ext4 superblock on the root's device");
        else
            snprintf(err, errlen, "no ext4 superblock on the device of %s", mountpoint);
        return -1;
    }
    uint32_t log = le32(sb + 0x18);
    if (log > 6) {
        snprintf(err, errlen, "the ext4 superblock gives a block size of 2^%u KiB", log);
        return -1;
    }
    out->block_size = 1024u << log;
    out->bits64 = (le32(sb + 0x60) & EXT4_FEATURE_INCOMPAT_64BIT) != 0;
    out->blocks = le32(sb + 4) | (out->bits64 ? (uint64_t)le32(sb + 0x150) << 32 : 0);
    return 0;
}

/* ------------------------------------------------------------------ the state file */

static void mark_done(const char *line)
{
    char tmp[] = STATE_DIR "/.done.XXXXXX";
    if (mkdir(STATE_DIR, 0755) < 0 && errno != EEXIST)
        goto fail;
    int fd = mkstemp(tmp);
    if (fd < 0)
        goto fail;
    size_t len = strlen(line);
    int ok = write(fd, line, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fchmod(fd, 0644) == 0 &&
             fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, STATE_FILE) < 0) {
        unlink(tmp);
        goto fail;
    }
    int dir = open(STATE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        fsync(dir);
        close(dir);
    }
    return;
fail:
    printf("grow: cannot write %s (%s): the next boot looks again\n", STATE_FILE, strerror(errno));
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ at boot */

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("grow: ", stdout);
    vprintf(fmt, ap);
    fputs(" (the next boot tries again)\n", stdout);
    va_end(ap);
    fflush(stdout);
    return 1;
}

static int grow_root(int force)
{
    double t0 = now();
    char err[512], part_name[PATH_MAX] = "", disk_name[PATH_MAX] = "";

    if (!force && access(STATE_FILE, F_OK) == 0) {
        printf("grow: done at first boot (%s): nothing to do\n", STATE_FILE);
        return 0;
    }
    struct stat root;
    struct statfs sfs;
    if (stat(mountpoint, &root) < 0 || statfs(mountpoint, &sfs) < 0)
        return fail("cannot look at %s: %s", mountpoint, strerror(errno));
    if (sfs.f_type != EXT4_SUPER_MAGIC) {
        char line[PATH_MAX + 128];
        if (is_root)
            snprintf(line, sizeof line, "grow: the root file system is not ext4 (type 0x%lx): nothing to grow",
                     (unsigned long)sfs.f_type);
        else
            snprintf(line, sizeof line, "grow: the file system of %s is not ext4 (type 0x%lx): nothing to grow",
                     mountpoint, (unsigned long)sfs.f_type);
        puts(line);
        mark_done(line);
        return 0;
    }
    if (sfs.f_flags & ST_RDONLY)
        return is_root ? fail("the root file system is mounted read-only: not growing")
                       : fail("the file system of %s is mounted read-only: not growing", mountpoint);

    char link[64], sysdir[PATH_MAX];
    snprintf(link, sizeof link, "/sys/dev/block/%u:%u", major(root.st_dev), minor(root.st_dev));
    if (!realpath(link, sysdir))
        return is_root ? fail("the root's device %u:%u is not in /sys/dev/block (%s)", major(root.st_dev),
                              minor(root.st_dev), strerror(errno))
                       : fail("the device %u:%u of %s is not in /sys/dev/block (%s)", major(root.st_dev),
                              minor(root.st_dev), mountpoint, strerror(errno));

    /* the partition step */
    uint64_t partno = 0, start = 0, len = 0, disk_len = 0, sector = 0;
    enum outcome part = NOTHING;
    struct plan plan;
    memset(&plan, 0, sizeof plan);
    int whole = read_u64(sysdir, "partition", &partno) < 0;
    if (whole) {
        if (read_u64(sysdir, "size", &len) < 0)
            return fail("cannot read %s/size", sysdir);
        snprintf(plan.why, sizeof plan.why, "a whole device, no partition");
        plan.new_len = plan.old_len = len;
    } else {
        char diskdir[PATH_MAX];
        snprintf(diskdir, sizeof diskdir, "%s", sysdir);
        dirname(diskdir);
        if (read_u64(sysdir, "start", &start) < 0 || read_u64(sysdir, "size", &len) < 0 ||
            read_u64(diskdir, "size", &disk_len) < 0)
            return fail("cannot read the partition's start and size from %s", sysdir);
        if (read_u64(diskdir, "queue/logical_block_size", &sector) == 0 && sector != SECTOR) {
            part = say(&plan, REFUSE, "the disk has %" PRIu64 "-byte sectors; only 512-byte sectors are handled",
                       sector);
            plan.new_len = plan.old_len = len;
        } else {
            int disk = open_device(diskdir, O_RDWR, disk_name, sizeof disk_name);
            if (disk < 0)
                return is_root ? fail("cannot open the disk of the root (%s): %s", diskdir, strerror(errno))
                               : fail("cannot open the disk of %s (%s): %s", mountpoint, diskdir, strerror(errno));
            unsigned char mbr[SECTOR], check[SECTOR];
            if (pread(disk, mbr, SECTOR, 0) != SECTOR) {
                close(disk);
                return fail("cannot read the MBR of %s: %s", disk_name, strerror(errno ? errno : EIO));
            }
            part = plan_mbr(mbr, (int)partno, start, len, disk_len, &plan);
            if (part == REFUSE) /* the partition stays as the kernel has it */
                plan.old_len = plan.new_len = len;
            if (part == GROW) {
                apply_plan(mbr, &plan);
                if (pwrite(disk, mbr, SECTOR, 0) != SECTOR || fsync(disk) < 0 ||
                    pread(disk, check, SECTOR, 0) != SECTOR || memcmp(mbr, check, SECTOR) != 0) {
                    close(disk);
                    return fail("cannot write the MBR of %s: %s", disk_name, strerror(errno ? errno : EIO));
                }
                struct blkpg_partition bp = {
                    .start = (long long)(plan.start * SECTOR),
                    .length = (long long)(plan.new_len * SECTOR),
                    .pno = (int)partno,
                };
                struct blkpg_ioctl_arg arg = {
                    .op = BLKPG_RESIZE_PARTITION, .flags = 0, .datalen = sizeof bp, .data = &bp,
                };
                if (ioctl(disk, BLKPG, &arg) < 0) {
                    int e = errno;
                    close(disk);
                    return fail("the MBR of %s now says %llu MiB, but the kernel refused the new size (BLKPG: %s); "
                                "it reads the MBR again at the next boot", disk_name,
                                mib(plan.new_len * SECTOR), strerror(e));
                }
                uint64_t seen = 0;
                if (read_u64(sysdir, "size", &seen) < 0 || seen != plan.new_len) {
                    close(disk);
                    return fail("the kernel gives the partition %" PRIu64 " sectors, not %" PRIu64, seen,
                                plan.new_len);
                }
            }
            close(disk);
        }
    }

    /* the file system step */
    int dev = open_device(sysdir, O_RDONLY, part_name, sizeof part_name);
    if (dev < 0)
        return is_root ? fail("cannot open the root's device (%s): %s", sysdir, strerror(errno))
                       : fail("cannot open the device of %s (%s): %s", mountpoint, sysdir, strerror(errno));
    struct ext4_size before, after;
    if (read_superblock(dev, &before, err, sizeof err) < 0) {
        close(dev);
        return fail("%s", err);
    }
    uint64_t target = plan.new_len * SECTOR / before.block_size;
    if (!before.bits64 && target > 0xFFFFFFFFu)
        target = 0xFFFFFFFFu; /* 32-bit block numbers */
    int fs_grown = 0;
    after = before;
    if (target > before.blocks) {
        int rootfd = open(mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0 || ioctl(rootfd, EXT4_IOC_RESIZE_FS, &target) < 0) {
            int e = errno;
            if (rootfd >= 0)
                close(rootfd);
            close(dev);
            return fail("the kernel did not grow the file system on %s from %llu to %llu MiB (EXT4_IOC_RESIZE_FS: "
                        "%s)", part_name, mib(before.blocks * before.block_size), mib(target * before.block_size),
                        strerror(e));
        }
        close(rootfd);
        if (read_superblock(dev, &after, err, sizeof err) < 0) {
            close(dev);
            return fail("after growing: %s", err);
        }
        if (after.blocks != target) {
            close(dev);
            return fail("the file system has %" PRIu64 " blocks after growing, not %" PRIu64, after.blocks, target);
        }
        fs_grown = 1;
    }
    close(dev);

    /* what happened, in one line */
    char line[2 * PATH_MAX + 2048], part_text[2 * PATH_MAX + 768], fs_text[256], df[128] = "", which[PATH_MAX + 64];
    uint64_t old_bytes = plan.old_len * SECTOR, new_bytes = plan.new_len * SECTOR;
    if (is_root)
        snprintf(which, sizeof which, "root partition %s", part_name);
    else
        snprintf(which, sizeof which, "partition %s of %s", part_name, mountpoint);
    if (part == GROW)
        snprintf(part_text, sizeof part_text, "%s %llu MiB -> %llu MiB", which, mib(old_bytes), mib(new_bytes));
    else if (part == NOTHING)
        snprintf(part_text, sizeof part_text, "%s %llu MiB (%s)", which, mib(old_bytes), plan.why);
    else
        snprintf(part_text, sizeof part_text, "%s %llu MiB not grown: %s", which, mib(old_bytes), plan.why);
    if (fs_grown)
        snprintf(fs_text, sizeof fs_text, "file system %llu MiB -> %llu MiB", mib(before.blocks * before.block_size),
                 mib(after.blocks * after.block_size));
    else
        snprintf(fs_text, sizeof fs_text, "file system %llu MiB (fills the partition)",
                 mib(before.blocks * before.block_size));
    struct statvfs vfs;
    if (statvfs(mountpoint, &vfs) == 0)
        snprintf(df, sizeof df, "; df: %llu MiB, %llu MiB available",
                 mib((uint64_t)vfs.f_blocks * vfs.f_frsize), mib((uint64_t)vfs.f_bavail * vfs.f_frsize));
    snprintf(line, sizeof line, "grow: %s%s, %s%s, in %.2f s", part != GROW && !fs_grown ? "nothing to grow: " : "",
             part_text, fs_text, df, now() - t0);
    puts(line);
    if (part == GROW && plan.why[0])
        printf("grow: %s\n", plan.why);
    fflush(stdout);
    if (part == GROW || fs_grown || access(STATE_FILE, F_OK) != 0)
        mark_done(line); /* the first outcome stays unless something changed since */
    return 0;
}

/* ------------------------------------------------------------------ on an image file */

static int grow_image(const char *file, int partno, int do_write)
{
    int fd = open(file, (do_write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    struct stat st;
    unsigned char mbr[SECTOR];
    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "appliance-grow: cannot open %s: %s\n", file, strerror(errno));
        return 1;
    }
    if (pread(fd, mbr, SECTOR, 0) != SECTOR) {
        fprintf(stderr, "appliance-grow: %s is shorter than one sector\n", file);
        close(fd);
        return 1;
    }
    if (partno == 0) { /* the last primary partition on the disk */
        uint64_t last = 0;
        for (int i = 0; i < 4; i++) {
            const unsigned char *e = mbr + 446 + 16 * i;
            if (e[4] && le32(e + 12) && (partno == 0 || le32(e + 8) >= last)) {
                partno = i + 1;
                last = le32(e + 8);
            }
        }
        if (partno == 0)
            partno = 1;
    }
    struct plan plan;
    enum outcome o = plan_mbr(mbr, partno, 0, 0, (uint64_t)st.st_size / SECTOR, &plan);
    if (o == REFUSE) {
        printf("grow: %s: partition %d not grown: %s\n", file, partno, plan.why);
        close(fd);
        return 1;
    }
    if (o == NOTHING) {
        printf("grow: %s: nothing to grow: partition %d %llu MiB (%s)\n", file, partno, mib(plan.old_len * SECTOR),
               plan.why);
        close(fd);
        return 0;
    }
    apply_plan(mbr, &plan);
    if (do_write && (pwrite(fd, mbr, SECTOR, 0) != SECTOR || fsync(fd) < 0)) {
        fprintf(stderr, "appliance-grow: cannot write the MBR of %s: %s\n", file, strerror(errno));
        close(fd);
        return 1;
    }
    printf("grow: %s: partition %d %llu MiB -> %llu MiB (sectors %" PRIu64 "-%" PRIu64 ")%s\n", file, partno,
           mib(plan.old_len * SECTOR), mib(plan.new_len * SECTOR), plan.start, plan.start + plan.new_len - 1,
           do_write ? "" : " [not written: no --write]");
    if (plan.why[0])
        printf("grow: %s\n", plan.why);
    close(fd);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: appliance-grow [--force] [MOUNTPOINT]\n"
                    "       appliance-grow --image FILE [--partition N] [--write]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int force = 0, do_write = 0, partno = 0;
    const char *image = NULL, *target = NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0)
            force = 1;
        else if (strcmp(argv[i], "--write") == 0)
            do_write = 1;
        else if (strcmp(argv[i], "--image") == 0 && i + 1 < argc)
            image = argv[++i];
        else if (strcmp(argv[i], "--partition") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 4) {
                fprintf(stderr, "appliance-grow: --partition takes 1 to 4 (a primary partition), not %s\n", argv[i]);
                return 2;
            }
            partno = (int)n;
        } else if (argv[i][0] != '-' && !target)
            target = argv[i];
        else
            return usage();
    }
    if (image)
        return force || target ? usage() : grow_image(image, partno, do_write);
    if (do_write || partno)
        return usage();
    if (target && strcmp(target, "/") != 0) {
        struct stat st;
        if (strlen(target) >= PATH_MAX) {
            fprintf(stderr, "appliance-grow: the mount point's name is too long\n");
            return 2;
        }
        if (stat(target, &st) < 0) {
            fprintf(stderr, "appliance-grow: cannot look at %s: %s\n", target, strerror(errno));
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            fprintf(stderr, "appliance-grow: %s is not a directory\n", target);
            return 1;
        }
        mountpoint = target;
        is_root = 0;
    }
    return grow_root(force);
}
