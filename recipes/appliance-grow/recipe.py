class ApplianceGrow(PackageRecipe):
    """/sbin/appliance-grow, our own small C program (beside this recipe): at first boot
    the root partition grows to the end of its disk and the mounted ext4 root file system
    grows to fill it, online, so an appliance on a 20 GiB disk uses 20 GiB. appliance-init's
    rcS runs it right after / is remounted read-write, before anything needs space.

    It finds the root's partition and disk through sysfs, lengthens the root's MBR entry
    (the start stays; at most 2 TiB, what an MBR addresses), tells the kernel
    (BLKPG_RESIZE_PARTITION) and grows the file system (EXT4_IOC_RESIZE_FS, what resize2fs
    does online): no growpart, sfdisk or resize2fs in the image. It leaves alone what it
    does not understand (a GUID partition table, extended partitions, a root that is not
    the last partition, sectors other than 512 bytes) and says why. One console line says
    what it did (grow: root partition /dev/vda2 116 MiB -> 2047 MiB, file system ...); the
    same line goes to /var/lib/appliance-grow/done, and later boots only say it was done.
    A failed step does not mark it done (the next boot tries again); running it again
    changes nothing ('appliance-grow --force' ignores the mark). 'appliance-grow
    MOUNTPOINT' grows the partition and ext4 holding MOUNTPOINT instead of the root: a
    network-booted appliance's rcS grows its data partition (/var/lib/appliance-os: the
    cache and the writable layer) this way, its root being an overlay (same state file).
    'appliance-grow --image FILE [--write]' does the partition step on a disk image file."""

    name = 'appliance-grow'
    version = '1.0'

    def setup(r):
        r.addSource('appliance-grow.c')
        r.Run('%(cc)s %(cflags)s %(ldflags)s -std=gnu11 -Wall -Wextra -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 '
              '-o appliance-grow appliance-grow.c')
        r.Install('appliance-grow', '%(essentialsbindir)s/appliance-grow', mode=0o755)
        r.MakeDirs('%(localstatedir)s/lib/appliance-grow')
