#!/bin/sh
# Greets everyone named on the command line, using greeter from the greeter package.
for who in "$@"; do greeter "$who"; done
