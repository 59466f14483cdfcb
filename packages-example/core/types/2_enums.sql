-- Life cycle of anything a customer can open and close (accounts, contracts).
CREATE TYPE record_status AS ENUM ('active', 'suspended', 'closed');
