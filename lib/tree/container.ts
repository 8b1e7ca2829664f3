/**
 * Which container a process runs in, from the cgroup paths in `/proc/<pid>/cgroup`: the
 * runtimes name a container's cgroup after its 64-hex id, and Kubernetes names the pod's
 * cgroup after the pod's uid. Pure; tested on the path shapes of each runtime.
 *
 * - docker: `docker-<id>.scope` (systemd driver), `/docker/<id>` (cgroupfs driver);
 * - containerd (CRI): `cri-containerd-<id>.scope`, `/kubepods/…/pod<uid>/<id>`;
 * - CRI-O: `crio-<id>.scope` (its monitor's `crio-conmon-<id>.scope` is not the container);
 * - podman: `libpod-<id>.scope`, `/libpod_parent/libpod-<id>`;
 * - Kubernetes pods: `kubepods-…-pod<uid with _>.slice`, `/kubepods/…/pod<uid>`.
 *
 * @module
 */

import { flatCopy } from "../text.ts";

/** A process's container, as its cgroup path names it. */
export interface Container {
  /** The runtime's 64-hex container id. */
  id: string;
  /** The Kubernetes pod's uid (dashed form), when the path names a pod; else null. */
  podUid: string | null;
}

const RUNTIME_SEGMENT = /^(?:docker|cri-containerd|crio|libpod)-([0-9a-f]{64})(?:\.scope)?$/;
const BARE_ID = /^[0-9a-f]{64}$/;
const POD_SEGMENT =
  /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$/;

/** The container named by one cgroup path, or null. */
export function containerOfPath(path: string): Container | null {
  const parts = path.split("/");
  let id: string | null = null;
  let podUid: string | null = null;
  for (let i = 0; i < parts.length; i++) {
    const seg = parts[i];
    const pod = POD_SEGMENT.exec(seg);
    if (pod) podUid = pod[1].replaceAll("_", "-");
    const runtime = RUNTIME_SEGMENT.exec(seg);
    // A bare id is a container only where a runtime put it: under docker/ or a pod.
    if (runtime) id = runtime[1];
    else if (BARE_ID.test(seg) && (parts[i - 1] === "docker" || podUid !== null)) id = seg;
    // The outermost container wins: a container's own nested cgroups do not rename it.
    // Copied: a match is a view into the path, and lines carry these (`flatCopy`).
    if (id) return { id: flatCopy(id), podUid: podUid === null ? null : flatCopy(podUid) };
  }
  return null;
}

/**
 * The container named by `/proc/<pid>/cgroup` text (one `hierarchy:controllers:path` line
 * per hierarchy), or null when no line names one. The unified (v2) line is asked first.
 */
export function parseContainer(cgroupText: string): Container | null {
  const lines = cgroupText.split("\n");
  lines.sort((a, b) => Number(!a.startsWith("0::")) - Number(!b.startsWith("0::")));
  for (const line of lines) {
    const second = line.indexOf(":", line.indexOf(":") + 1);
    if (second < 0) continue;
    const c = containerOfPath(line.slice(second + 1));
    if (c) return c;
  }
  return null;
}

/** {@linkcode parseContainer}, or undefined when the cgroup file could not be read. */
export function containerOf(cgroupText: string | null): Container | null | undefined {
  return cgroupText === null ? undefined : parseContainer(cgroupText);
}
