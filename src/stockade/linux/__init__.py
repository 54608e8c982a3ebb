"""The Linux layer every other package stands on: constants (consts), the syscall table
per architecture (syscall_table, from libseccomp), the ctypes syscall wrappers
(syscalls), signal helpers (signals) and what the host is (host: one probe per fact;
hostfacts: the one HostFacts record).

Nothing here imports another stockade package except errors: arrows only point down."""
