"""Named constants allowed in argument conditions (`value: CLONE_NEWUSER`, `AF_PACKET`):
which of the kernel's constants (linux.consts, where their values live) a policy may name."""

from __future__ import annotations

from stockade.linux import consts

_NAMES = (
    # clone(2) flags
    "CSIGNAL", "CLONE_VM", "CLONE_FS", "CLONE_FILES", "CLONE_SIGHAND", "CLONE_PIDFD",
    "CLONE_PTRACE", "CLONE_VFORK", "CLONE_PARENT", "CLONE_THREAD", "CLONE_NEWNS",
    "CLONE_SYSVSEM", "CLONE_SETTLS", "CLONE_PARENT_SETTID", "CLONE_CHILD_CLEARTID",
    "CLONE_DETACHED", "CLONE_UNTRACED", "CLONE_CHILD_SETTID", "CLONE_NEWCGROUP",
    "CLONE_NEWUTS", "CLONE_NEWIPC", "CLONE_NEWUSER", "CLONE_NEWPID", "CLONE_NEWNET",
    "CLONE_IO", "CLONE_NEWTIME",
    # every namespace flag at once (Docker's mask 0x7E020000)
    "CLONE_NAMESPACES",
    # socket families
    "AF_UNSPEC", "AF_UNIX", "AF_LOCAL", "AF_INET", "AF_AX25", "AF_IPX", "AF_APPLETALK",
    "AF_NETROM", "AF_BRIDGE", "AF_ATMPVC", "AF_X25", "AF_INET6", "AF_ROSE", "AF_DECnet",
    "AF_NETBEUI", "AF_SECURITY", "AF_KEY", "AF_NETLINK", "AF_PACKET", "AF_ASH", "AF_ECONET",
    "AF_ATMSVC", "AF_RDS", "AF_SNA", "AF_IRDA", "AF_PPPOX", "AF_WANPIPE", "AF_LLC", "AF_IB",
    "AF_MPLS", "AF_CAN", "AF_TIPC", "AF_BLUETOOTH", "AF_IUCV", "AF_RXRPC", "AF_ISDN",
    "AF_PHONET", "AF_IEEE802154", "AF_CAIF", "AF_ALG", "AF_NFC", "AF_VSOCK", "AF_KCM",
    "AF_QIPCRTR", "AF_SMC", "AF_XDP", "AF_MCTP",
    # socket types (low bits; SOCK_NONBLOCK/SOCK_CLOEXEC are flags on top)
    "SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "SOCK_RDM", "SOCK_SEQPACKET", "SOCK_PACKET",
    "SOCK_NONBLOCK", "SOCK_CLOEXEC", "SOCK_TYPE_MASK",
    # personality(2)
    "PER_LINUX", "PER_LINUX32", "UNAME26", "ADDR_NO_RANDOMIZE", "PERSONALITY_QUERY",
    # ioctl requests often filtered
    "TIOCSTI", "TIOCLINUX", "FIONREAD", "TCGETS",
    # prctl options
    "PR_SET_NO_NEW_PRIVS", "PR_SET_SECCOMP", "PR_CAPBSET_DROP",
    # misc
    "O_RDONLY", "O_WRONLY", "O_RDWR", "O_CREAT", "O_ACCMODE", "PROT_EXEC", "PROT_WRITE",
    "PROT_READ",
)
CONSTANTS: dict[str, int] = {name: getattr(consts, name) for name in _NAMES}
