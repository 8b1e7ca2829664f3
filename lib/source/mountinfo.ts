/**
 * `/proc/self/mountinfo`: the mounts a filesystem mark must be placed on. Pure.
 *
 * @module
 */

/** One mount. */
export interface MountEntry {
  /** Unique id of the mount (field 1). */
  mountId: number;
  /** `major:minor` of the filesystem (field 3): one per superblock. */
  device: string;
  /** Where it is mounted, unescaped. */
  mountPoint: string;
  /** Filesystem type (after the ` - ` separator). */
  fsType: string;
}

/**
 * Filesystems no program is executed from: kernel interfaces. Marking them costs the
 * kernel a check on every open there and gains nothing.
 */
export const PSEUDO_FS_TYPES: ReadonlySet<string> = new Set([
  "proc",
  "sysfs",
  "cgroup",
  "cgroup2",
  "devpts",
  "mqueue",
  "bpf",
  "tracefs",
  "debugfs",
  "securityfs",
  "pstore",
  "configfs",
  "fusectl",
  "binfmt_misc",
  "autofs",
  "rpc_pipefs",
  "nsfs",
  "efivarfs",
  "selinuxfs",
  "hugetlbfs",
]);

/** Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`). */
function unescape(s: string): string {
  return s.includes("\\")
    ? s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
    : s;
}

/** Parses mountinfo text; malformed lines are skipped. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    if (f.length < 10 || sep < 0 || sep + 1 >= f.length) continue;
    const mountId = Number(f[0]);
    if (!Number.isInteger(mountId)) continue;
    out.push({ mountId, device: f[2], mountPoint: unescape(f[4]), fsType: f[sep + 1] });
  }
  return out;
}
