"""`stockade audit`: which escape vectors are open in a running container, with proofs.

Flow: targets (how a container is found) -> view (a frozen /proc snapshot) -> registry
(checks from checks/, one module per family) -> probe (harmless proofs in a child that
has entered the container's namespaces, cgroup, credentials, capabilities, LSM label and
a copy of its seccomp filter) -> findings -> report/ (table, JSON + schema, SARIF,
Markdown, HTML) and fix (a stockade policy closing what was found).

Known limits: a Landlock domain cannot be copied into the probe child (there is no
interface to read one), so from the host a path a Landlock rule forbids can look open;
`--self` runs inside the domain and sees it.
"""
