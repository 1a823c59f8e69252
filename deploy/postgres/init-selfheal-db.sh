#!/bin/sh
# First start of the PostgreSQL container: a role and a database for the selfheal ledger, beside
# the `temporal` and `temporal_visibility` databases that the Temporal server creates for itself.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE selfheal LOGIN PASSWORD '${SELFHEAL_DB_PASSWORD}';
CREATE DATABASE selfheal OWNER selfheal;
SQL
