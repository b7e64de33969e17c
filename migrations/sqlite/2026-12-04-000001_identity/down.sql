DROP TABLE events;
DROP TABLE pending_links;
DROP TABLE edges;
DROP TABLE instance_ids;
DROP TABLE instances;
DROP TABLE tenants;
