"""Putting what stockade compiled for an LSM into the kernel, and checking it took.

apparmor.py loads AppArmor profiles (apparmor_parser -r, once the kernel's list of
active LSMs says AppArmor is one); selinux.py installs SELinux modules
(semodule -i). Both skip the work when the kernel already holds the same text, by its
digest (stamps.py). load.py is what the runner calls before it starts a sandbox;
verify.py reads the payload's label after its execve; stockade.cli.lsm is `stockade lsm`.
"""
