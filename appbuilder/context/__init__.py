"""Contextualization: the user data an appliance reads at boot.

The appliance's agent (``recipes/cernvm-context``) takes EC2-style user data with a
``[cernvm]`` section from a *config drive* (an ISO 9660 or FAT volume labelled
``cidata``, holding a file ``user-data``, like cloud-init's NoCloud source) or from the
EC2 metadata service; from an OVF environment (``ovf-env.xml`` on a CD-ROM, the
properties of the OVF descriptor's ProductSection) it takes the login user, its SSH
keys and password hash, the proxy and the repositories; from EC2 or OpenStack metadata
the public keys. :mod:`appbuilder.context.drive` makes a config drive
(``appbuild context make user-data.ini -o ctx.iso``); :mod:`appbuilder.context.userdata`
checks user data before boot as the agent will.
"""
