"""From the raw disk to each output format.

``specs``        the formats: data files (``data/*.yaml``, and a workspace's ``formats/``)
                 read into objects of their family; ``resolve_formats``, ``boot_drive``
``families/``    one class per family (raw, qcow2, vmdk and ova, vhd): options, how the
                 disk is made, fixed up, checked, packed and booted; the registry
``convert``      ``convert_all``: planning, running conversions in parallel, all-or-nothing
``descriptors``  rendering the descriptor templates (workspace first, then ``data/``)
``qemu``, ``vmdk``, ``vmdkstream``, ``vhd``, ``ova``   the file formats themselves
"""
