#!/usr/bin/python3
"""Placeholder replaced in the next commit."""
import sys
sys.exit(0)
