"""Kubernetes: a Pod securityContext plus the Security Profiles Operator objects
(SeccompProfile, AppArmorProfile, SelinuxProfile) that carry the profiles to every node.

Object versions follow the SPO CRDs: SeccompProfile v1beta1, AppArmorProfile v1alpha1,
SelinuxProfile v1 (`inherit` the system `container` policy, `allow` per type/class).
"""

from __future__ import annotations

from typing import Any

from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Bandwidth, Policy
from stockade.policy.paths import subtree_prefix, validate_filesystem
from stockade.profiles import capabilities as caps
from stockade.profiles import network_targets as net
from stockade.profiles.base import Artifact, Artifacts, Enforcement
from stockade.profiles.registry import constituent_enforcements

SPO_GROUP = "security-profiles-operator.x-k8s.io"
NAMESPACE = "default"
# Fields of the OCI seccomp object the SeccompProfile CRD has (the rest is dropped).
_SPO_SECCOMP_KEYS = ("defaultAction", "architectures", "flags", "syscalls")
_SPO_SYSCALL_KEYS = ("names", "action", "errnoRet", "args")


def _yaml(docs: list[dict[str, Any]]) -> str:
    import yaml

    return "---\n".join(yaml.safe_dump(d, sort_keys=True, default_flow_style=False) for d in docs)


def seccomp_profile(policy: Policy, host: HostFacts, warnings: list[str]) -> dict[str, Any]:
    from stockade.seccomp.docker_json import oci_seccomp

    src = oci_seccomp(policy, host)
    spec: dict[str, Any] = {k: src[k] for k in _SPO_SECCOMP_KEYS if k in src}
    dropped = sorted(set(src) - set(_SPO_SECCOMP_KEYS))
    if "defaultErrnoRet" in dropped:
        warnings.append("kubernetes: SeccompProfile has no defaultErrnoRet; the default action "
                        "returns EPERM there")
    syscalls = []
    entries: list[dict[str, Any]] = src.get("syscalls", [])  # type: ignore[assignment]
    for entry in entries:
        syscalls.append({k: entry[k] for k in _SPO_SYSCALL_KEYS if k in entry})
    if syscalls:
        spec["syscalls"] = syscalls
    return {"apiVersion": f"{SPO_GROUP}/v1beta1", "kind": "SeccompProfile",
            "metadata": {"name": policy.name, "namespace": NAMESPACE}, "spec": spec}


def apparmor_profile(policy: Policy, warnings: list[str]) -> dict[str, Any]:
    fs = policy.filesystem

    def plain(entries: Any) -> list[str]:
        out = []
        for e in entries:
            p = subtree_prefix(e.path)
            out.append(e.path if p is None else (p if p == e.path else p + "/**"))
        return sorted(dict.fromkeys(out))

    abstract: dict[str, Any] = {}
    kept = caps.ordered(policy.capabilities.kept)
    if kept:
        abstract["capability"] = {"allowedCapabilities": [c.removeprefix("CAP_").lower() for c in kept]}
    if fs.exec:
        abstract["executable"] = {"allowedExecutables": plain(fs.exec)}
    filesystem: dict[str, Any] = {}
    ro = plain(fs.read_only) + (["/**"] if fs.root != "writable" else [])
    rw = plain((*fs.writable, *fs.tmpfs)) + (["/**"] if fs.root == "writable" else [])
    if ro:
        filesystem["readOnlyPaths"] = sorted(ro)
    if rw:
        filesystem["readWritePaths"] = sorted(rw)
    if filesystem:
        abstract["filesystem"] = filesystem
    types = {s.type for s in policy.network.allow if s.family in ("inet", "inet6")}
    if types or policy.network.allow:
        abstract["network"] = {
            "allowRaw": "raw" in types,
            "allowedProtocols": {"allowTcp": bool(types & {"tcp", None}),
                                 "allowUdp": bool(types & {"udp", None})},
        }
    if fs.deny:
        warnings.append("kubernetes: AppArmorProfile's abstract form has no deny rules; "
                        "filesystem.deny is enforced there only by seccomp/SELinux")
    spec: dict[str, Any] = {"abstract": abstract}
    if policy.lsm.apparmor is not None and policy.lsm.apparmor.mode == "complain":
        spec["complainMode"] = True
    return {"apiVersion": f"{SPO_GROUP}/v1alpha1", "kind": "AppArmorProfile",
            "metadata": {"name": policy.name}, "spec": spec}


def selinux_profile(policy: Policy, host: HostFacts, warnings: list[str]) -> dict[str, Any]:
    """The CIL module's allow rules, with stockade's own file types folded into the
    `container_file_t` that SPO's system `container` policy labels container files with."""
    from stockade.profiles.selinux import build_module
    from stockade.profiles.selinux.cil import AccessVector

    module = build_module(policy, host)
    dom = policy.selinux_type
    allow: dict[str, dict[str, list[str]]] = {}
    for st in module.statements:
        if not isinstance(st, AccessVector) or st.kind != "allow":
            continue
        if st.target in ("self", dom):
            target = "@self"
        elif st.target.endswith("_file_t"):
            target = "container_file_t"
        else:
            warnings.append(f"kubernetes: SelinuxProfile cannot declare type {st.target} "
                            "(portcon); network.bind is enforced by the CIL module only")
            continue
        perms = allow.setdefault(target, {}).setdefault(st.cls, [])
        perms.extend(p for p in st.perms if p not in perms)
    for classes in allow.values():
        for cls in classes:
            classes[cls] = sorted(classes[cls])
    return {"apiVersion": f"{SPO_GROUP}/v1", "kind": "SelinuxProfile",
            "metadata": {"name": policy.name},
            "spec": {"inherit": [{"kind": "System", "name": "container"}],
                     "mode": "Enforcing", "allow": allow}}


def pod(policy: Policy, host: HostFacts) -> dict[str, Any]:
    fs = policy.filesystem
    pod_sc: dict[str, Any] = {
        "seccompProfile": {"type": "Localhost",
                           "localhostProfile": f"operator/{NAMESPACE}/{policy.name}.json"},
        "runAsUser": policy.user.uid,
        "runAsGroup": policy.user.gid,
        "runAsNonRoot": policy.user.uid != 0,
    }
    if policy.lsm.apparmor is not None:
        pod_sc["appArmorProfile"] = {"type": "Localhost", "localhostProfile": policy.name}
    if policy.lsm.selinux is not None:
        # SPO's usage string for a cluster-scoped SelinuxProfile: "<name>.process"
        pod_sc["seLinuxOptions"] = {"type": f"{policy.name}.process"}
    container_sc: dict[str, Any] = {
        "allowPrivilegeEscalation": not policy.no_new_privileges,
        "privileged": False,
        "readOnlyRootFilesystem": fs.root != "writable",
        "capabilities": caps.kubernetes_capabilities(policy, host),
    }
    limits: dict[str, str] = {}
    if policy.resources.memory is not None:
        limits["memory"] = str(policy.resources.memory)
    if policy.resources.cpu is not None:
        limits["cpu"] = f"{int(round(policy.resources.cpu * 1000))}m"
    container: dict[str, Any] = {"name": policy.name, "image": "IMAGE",
                                 "securityContext": container_sc}
    metadata: dict[str, Any] = {"name": policy.name, "namespace": NAMESPACE,
                                "labels": {"app.kubernetes.io/managed-by": "stockade"}}
    if net.is_private(policy):  # the NetworkPolicy selects the pod by name
        metadata["labels"][net.NAME_LABEL] = policy.name
        if net.container_ports(policy):
            container["ports"] = net.container_ports(policy)
        if net.pod_annotations(policy):
            metadata["annotations"] = net.pod_annotations(policy)
    if limits:
        container["resources"] = {"limits": limits}
    volumes = []
    mounts = []
    for i, e in enumerate(dict.fromkeys(x.path for x in (*fs.tmpfs, *fs.writable))):
        if fs.root == "writable" or subtree_prefix(e) != e:
            continue
        vol = f"{policy.name}-w{i}"
        volumes.append({"name": vol, "emptyDir": {}})
        mounts.append({"name": vol, "mountPath": e})
    if mounts:
        container["volumeMounts"] = mounts
    spec: dict[str, Any] = {"securityContext": pod_sc, "containers": [container],
                            "hostNetwork": policy.network.mode == "host",
                            "hostPID": "pid" not in policy.namespaces,
                            "hostIPC": "ipc" not in policy.namespaces,
                            "automountServiceAccountToken": False}
    if "user" in policy.namespaces and policy.user.map != "host":
        spec["hostUsers"] = False
    if volumes:
        spec["volumes"] = volumes
    if policy.hostname:
        spec["hostname"] = policy.hostname
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


RUNTIME_HANDLER = "stockade"


def runtime_class(handler: str = RUNTIME_HANDLER) -> dict[str, Any]:
    """The RuntimeClass that runs a Pod with stockade as its OCI runtime, on nodes whose
    containerd has a runtime handler of that name (docs/OCI.md, Kubernetes). A Pod opts
    in with `spec.runtimeClassName`; the generated Pod does not, so it runs anywhere."""
    return {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
            "metadata": {"name": handler,
                         "labels": {"app.kubernetes.io/managed-by": "stockade"}},
            "handler": handler}


def objects(policy: Policy, host: HostFacts) -> tuple[dict[str, dict[str, Any]], list[str]]:
    warnings: list[str] = []
    out = {"pod.yaml": pod(policy, host),
           "seccompprofile.yaml": seccomp_profile(policy, host, warnings)}
    if policy.lsm.apparmor is not None:
        out["apparmorprofile.yaml"] = apparmor_profile(policy, warnings)
    if policy.lsm.selinux is not None:
        out["selinuxprofile.yaml"] = selinux_profile(policy, host, warnings)
    if net.is_private(policy):
        out["networkpolicy.yaml"] = net.network_policy(policy, NAMESPACE, warnings)
        if policy.network.bandwidth != Bandwidth():
            warnings.append("kubernetes: the bandwidth annotations need the CNI bandwidth "
                            "plugin on the nodes")
    if policy.rlimits:
        warnings.append("kubernetes: rlimits have no Pod field; set them in the runtime")
    if policy.resources.pids is not None:
        warnings.append("kubernetes: pids is a kubelet setting (podPidsLimit), not a Pod field")
    return out, warnings


def enforcements(policy: Policy, host: HostFacts) -> list[Enforcement]:
    return [Enforcement("no_new_privileges", "kubernetes", "allowPrivilegeEscalation: false"),
            Enforcement(f"filesystem.root[{policy.filesystem.root}]", "kubernetes",
                        "readOnlyRootFilesystem"), *net.enforcements(policy, "kubernetes")]


def compile(policy: Policy, host: HostFacts) -> Artifacts:  # noqa: A001 - the Backend name
    validate_filesystem(policy)  # one glob language for every target (paths.py)
    objs, warnings = objects(policy, host)
    files = [Artifact(name, text=_yaml([doc]), description=f"{doc['kind']} {doc['metadata']['name']}")
             for name, doc in objs.items()]
    files.append(Artifact("runtimeclass.yaml", text=_yaml([runtime_class()]),
                          description="RuntimeClass stockade, for nodes whose containerd "
                          "has the stockade handler (set runtimeClassName to use it)"))
    files.append(Artifact("all.yaml", text=_yaml([objs[n] for n in sorted(objs) if n != "pod.yaml"]
                                               + [objs["pod.yaml"]]),
                          description="every object, profiles first (kubectl apply -f all.yaml)"))
    return Artifacts(target="kubernetes", files=tuple(files), enforcements=tuple(enforcements(policy, host))
        + constituent_enforcements(policy, host, "kubernetes"),
                     warnings=tuple(warnings + caps.critical_warnings(policy)),
                     notes=("needs the Security Profiles Operator in the cluster",))
