DROP TABLE api_keys;
DROP TABLE config_versions;
