//! Reports people can read: names from the directory, the org's time zone, intervals; on
//! MariaDB and SQLite.
mod report_demo;
mod report_names;
mod report_zones;
