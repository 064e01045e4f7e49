//! LXC containers through the lxc-* tools, and app template manifests.
