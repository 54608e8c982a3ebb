"""`network.mode: private`: the sandbox's own interface, egress rules, rate limits.

spec.py       the policy's network section as plain plan data (cached with the part)
addressing.py one slot per running jail: its /30, device and table names, its lock
peers.py      egress entries -> addresses (names resolved at start, pinned for the run)
nft.py        the stockade-owned nftables table of one jail (host side, out of reach)
shaping.py    tc: tbf on the host's veth end, ifb + tbf for what leaves the sandbox
state.py      what each jail created, recorded before it is created; forwarding refcount
jail.py       set up before the payload starts, torn down at its end
gc.py         what killed runners left: removed by the next jail or `stockade gc`
"""
