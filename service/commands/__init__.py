"""One module per CLI verb (or group of related verbs). Each registers its commands on
:data:`service.cli.app`; :mod:`service.cli` imports every module in this package."""
