"""qemu-coredump, installed as the package qemu_coredump (the directory is cli/)."""
