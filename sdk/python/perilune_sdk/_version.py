"""The SDK's version: always the gateway's (a test checks that they agree)."""

__version__ = "0.1.0"
