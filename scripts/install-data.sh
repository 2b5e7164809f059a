#!/usr/bin/env bash
# Make the datasets available where sparsenet.data looks for them.
# Fashion-MNIST: Debian's package dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist).
# MNIST: no Debian package; the loader finds ../shared/datasets/mnist on our machines, a directory
# given with --data-dir / SPARSENET_DATA_DIR, the Keras cache, or downloads into that cache.
# This step never fails the build: the loader's own error says where it looked and what to do.
set -u
if dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing Debian package dataset-fashion-mnist ..."
  if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/tmp/sparsenet-apt.log 2>&1; then
    echo "dataset-fashion-mnist installed"
  else
    echo "warning: apt-get could not install dataset-fashion-mnist (log: /tmp/sparsenet-apt.log);" \
         "the loader will try its other places" >&2
  fi
else
  echo "note: dataset-fashion-mnist not installed and apt-get is not usable here (needs root on Debian);" \
       "the loader will try --data-dir, SPARSENET_DATA_DIR, the Keras cache and a download" >&2
fi
