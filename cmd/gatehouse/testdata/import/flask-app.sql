-- A Flask-SQLAlchemy app's users with Flask-Security's role tables, the
-- shape docs/migrate.md exports. The hashes are Werkzeug 3.1's
-- generate_password_hash output (pbkdf2 with the 2.x and 3.0 iteration
-- counts, and 3.1's default scrypt); the passwords are in migrate_test.go.
CREATE TABLE user (
    id INTEGER PRIMARY KEY,
    username VARCHAR(64) NOT NULL UNIQUE,
    email VARCHAR(120) UNIQUE,
    password_hash VARCHAR(256) NOT NULL,
    active BOOLEAN NOT NULL DEFAULT 1
);
CREATE TABLE role (
    id INTEGER PRIMARY KEY,
    name VARCHAR(80) NOT NULL UNIQUE
);
CREATE TABLE roles_users (
    user_id INTEGER REFERENCES user(id),
    role_id INTEGER REFERENCES role(id)
);
INSERT INTO role (id, name) VALUES (1, 'admin'), (2, 'editor'), (3, 'reader');
INSERT INTO user (id, username, email, password_hash) VALUES
    (1, 'Alice', 'Alice@Example.com', 'pbkdf2:sha256:260000$fMTgVF7Tny1sKjgQ$5137228b0c28d3d5d6a8adc39928ebc8728db8b42003bc309b46801e5eeb8ffb'),
    (2, 'bob', 'bob@example.com', 'scrypt:32768:8:1$5A0Wfyt6kokS6YL9$a88892bbd8146a7bdb43af5d3dec1dd9d7247ce3a13e455c21f26749ecfeec4c2102f5f679e5f4f5432676ea6e8564f9db315fc5dffaf8cab5f0983b3389f083'),
    (3, 'carol', NULL, 'pbkdf2:sha256:600000$2HbKlYr2sVbt61Jz$d6398eb627a169dee7dfa52afc4b358688c8d2fae8ec0c015125fee5f9852f8e');
INSERT INTO roles_users (user_id, role_id) VALUES (1, 2), (1, 1), (2, 3);
