"""Offline stand-ins of the tasks' datasets, each written in its dataset's official on-disk layout from real
images installed with the machine (Fashion-MNIST, scikit-image's data, OpenCV's documentation images), so the
real readers run unchanged: :mod:`.retrieval` (revisitop), :mod:`.correspondence` (SPair-71k),
:mod:`.video` (DAVIS-2017). ``build(root, say)`` of each writes (or finds) its sets.

The builders share :mod:`.photos` (the one photo source: ``cv:``/``sk:``/``sl:`` references, the opencv-doc
folder, the missing-source error, pixel conversions) and :mod:`.geometry` (homographies and warps); those two
import no builder."""
