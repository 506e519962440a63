//! Schema, migrations, the Writer, reports and the storage CLI, on MariaDB and SQLite.
mod storage_cli;
mod storage_reports;
mod storage_rewrite;
mod storage_schema;
mod storage_settle;
mod storage_upstream;
mod storage_writer;
mod storage_writer_actor;
mod storage_writer_lanes;
