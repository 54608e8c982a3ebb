"""Images: a content-addressed store of verified, unpacked layers, and the rootfs the runner
starts from.

    archive  readers for `docker save` archives and OCI image layouts (dir or tar)
    unpack   safe layer extraction with OCI whiteouts (fd-relative, never through a symlink)
    limits   size, entry, depth and path limits of a load, checked while layers stream
    fsutil   fd-relative, iterative walking and removal of image-built trees
    store    the on-disk store: layers/<diff_id>, images/<config digest>.json, refs.json
    config   ImageConfig (Entrypoint/Cmd/Env/...) parsed from the image config
    process  resolve_process: the image proposes, the command line and policy decide
    rootfs   prepare_rootfs: overlayfs, a read-only lower stack, or a copy
    export   the project's own OCI layout writer (used by tests and `image save`)
"""
