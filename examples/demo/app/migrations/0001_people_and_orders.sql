CREATE TABLE people (
    id         bigserial PRIMARY KEY,
    full_name  text NOT NULL,
    email      text NOT NULL,
    phone      text NOT NULL,
    street     text NOT NULL,
    city       text NOT NULL,
    postcode   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    person_id   bigint NOT NULL REFERENCES people(id),
    item        text NOT NULL,
    quantity    int NOT NULL,
    total_cents bigint NOT NULL,
    ordered_at  timestamptz NOT NULL
);
CREATE INDEX orders_person_id ON orders(person_id);
