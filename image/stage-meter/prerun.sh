#!/bin/bash -e
# pi-gen stage prerun: start from the previous stage's root file system (stage2, "lite").
if [ ! -d "${ROOTFS_DIR}" ]; then
	copy_previous
fi
