"""Contextualization: the user data an appliance reads at boot.

The appliance's agent (``recipes/cernvm-context``) takes EC2-style user data with a
``[cernvm]`` section from a *config drive* (an ISO 9660 or FAT volume labelled
``cidata``, holding a file ``user-data``, like cloud-init's NoCloud source) or from the
EC2 metadata service. :mod:`appbuilder.context.drive` makes such a drive
(``appbuild context make user-data.ini -o ctx.iso``).
"""
