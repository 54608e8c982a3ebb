"""Seccomp: one policy -> a libseccomp filter (BPF), Docker JSON and OCI JSON.

Three steps, one module group each, so the outputs cannot drift apart:

- planning (`plan`, `argsets`, `rewrite`): the policy as per-arch rule lists libseccomp,
  Docker and runc all read the same way; argument conditions as exact sets;
- building (`build`, `forked_build`, `prologue`, `docker_json`, `runc_build`): the
  plan through libseccomp to a BPF program, or written out as Docker/OCI JSON;
- checking (`bpf`, `check`, `samples`): the built program run in a cBPF interpreter on
  the values where it could go wrong, against `policy.semantics.decide`.

`filter.compile_filter` ties them together: plan, build, check, and plan again with the
next libseccomp workaround for each syscall the check found wrong.
Nothing is re-exported here: importing the package must not pull in libseccomp.
"""
