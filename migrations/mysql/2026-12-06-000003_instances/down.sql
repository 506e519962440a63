DROP TABLE instances;
DROP TABLE instance_leases;
