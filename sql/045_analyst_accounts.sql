-- 045: the analysts' accounts and the analysts' API's login (issue 29).
--   * analyst_accounts: who may call the analysts' API (python -m analytics.api), as which role
--     (analyst: releases only; dpo: the budgets and the privacy ledger), by which bearer token. Only
--     the token's SHA-256 is stored (a token is 256 random bits: nobody can search that space, so
--     a key adds nothing); the token itself is printed once by python -m analytics.accounts create.
--     A disabled account keeps its name, which the privacy ledger names.
--   * requested_epsilon: the yearly budget asked for at creation (--budget), kept here until the
--     release module's budgets (analytics.budget.set_budget) take it; NULL for a DPO.
--   * Created, listed and disabled by the operator's tool as the owner (like the DPO console's
--     accounts, sql/031): the API's login only reads who holds a token, so a leaked API password
--     cannot make an account.
--   * analysts_api (login login_analysts_api) is the API's group role: it reads the accounts' names,
--     roles, token hashes and whether they are disabled, nothing else here.

CREATE TABLE IF NOT EXISTS analyst_accounts (
    id                BIGSERIAL PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9._-]{1,39}$'),
    role              TEXT NOT NULL CHECK (role IN ('analyst', 'dpo')),
    token_hash        TEXT NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    requested_epsilon DOUBLE PRECISION CHECK (requested_epsilon > 0 AND requested_epsilon < 'Infinity'),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    disabled_at       TIMESTAMPTZ,
    CHECK (role = 'analyst' OR requested_epsilon IS NULL)
);

SELECT platform_group_role('analysts_api');

GRANT SELECT (id, name, role, token_hash, disabled_at) ON analyst_accounts TO analysts_api;

-- The login, a member of its own group only (the same rules as sql/015's).
SELECT platform_component_login('login_analysts_api', 'analysts_api');
