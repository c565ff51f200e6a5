"""Upstream distributions as appbuild reaches them: the machine's apt, rpm-md repositories."""
