"""Argon integration-test harness: real PostgreSQL 15 and Swift+s3api.

    procs   daemon and temporary-directory tracking, cleanup on any exit
    ports   free loopback TCP ports
    pg      PgCluster, a throwaway PostgreSQL 15 cluster
    swift   SwiftS3, a one-node Swift with the S3 API

See tests/integration/README.md.
"""

from .pg import PgCluster
from .swift import SwiftS3

__all__ = ["PgCluster", "SwiftS3"]
