ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'placed';
CREATE INDEX orders_ordered_at ON orders(ordered_at DESC);
