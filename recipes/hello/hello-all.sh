#!/bin/sh
# Greets everyone named on the command line.
for who in "$@"; do hello "$who"; done
