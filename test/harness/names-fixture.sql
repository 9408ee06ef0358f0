-- Table and schema names a restore must bring back and find again (issue 20 item 5): a space,
-- quotes, a dot, a tab, a newline, unicode, upper case, names that look like TOC keywords or like
-- a qualified name, in non-public schemas; a partitioned table with partitions (one in another
-- schema, one partitioned again) and an inherited table. Every table holds a few rows.
CREATE SCHEMA "Odd Schema";
CREATE SCHEMA "it's ""here""";
CREATE SCHEMA "dot.ted";
CREATE SCHEMA "été 🐘";
CREATE SCHEMA "DATA";
CREATE SCHEMA "ATTACH";
CREATE SCHEMA "a.b";
CREATE SCHEMA a;

CREATE TABLE public."with space" (id int PRIMARY KEY, v text);
CREATE TABLE public."dq""uote" (id int PRIMARY KEY, v text);
CREATE TABLE public."sq'uote" (id int PRIMARY KEY, v text);
CREATE TABLE public."do.t" (id int PRIMARY KEY, v text);
CREATE TABLE public.U&"ta\0009b" (id int PRIMARY KEY, v text);
CREATE TABLE public.U&"new\000aline" (id int PRIMARY KEY, v text);
CREATE TABLE public."café" (id int PRIMARY KEY, v text);
CREATE TABLE public."🦣 emoji" (id int, v text);
CREATE TABLE public."UPPER" (id int PRIMARY KEY, v text);
CREATE TABLE public."back\slash" (id int PRIMARY KEY, v text);
CREATE TABLE public."  spaces around  " (id int PRIMARY KEY, v text);
CREATE TABLE "Odd Schema"."Mixed Case Table" (id int PRIMARY KEY, v text);
CREATE TABLE "it's ""here"""."a ""quoted"" 'name'" (id int PRIMARY KEY, v text);
CREATE TABLE "dot.ted"."public.accounts" (id int PRIMARY KEY, v text);
CREATE TABLE "été 🐘".U&"naïve\0009tab" (id int, v text);
CREATE TABLE "DATA".foo (id int PRIMARY KEY, v text);
CREATE TABLE "ATTACH"."public parted_1" (id int PRIMARY KEY, v text);
-- Two different tables whose "schema.table" text is the same: a.b.c
CREATE TABLE "a.b".c (id int PRIMARY KEY, v text);
CREATE TABLE a."b.c" (id int PRIMARY KEY, v text);

-- A partitioned table: partitions in public and in another schema, a default one, and one partitioned again.
CREATE TABLE public.parted (id int NOT NULL, k int NOT NULL, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES IN (1);
CREATE TABLE "Odd Schema"."parted 2" PARTITION OF public.parted FOR VALUES IN (2);
CREATE TABLE public."parted sub" PARTITION OF public.parted FOR VALUES IN (3, 4) PARTITION BY LIST (k);
CREATE TABLE public."parted sub 3" PARTITION OF public."parted sub" FOR VALUES IN (3);
CREATE TABLE public."parted sub 4" PARTITION OF public."parted sub" FOR VALUES IN (4);
CREATE TABLE public."parted default" PARTITION OF public.parted DEFAULT;

-- Inheritance: rows in the parent and in the child (FROM ONLY keeps them apart).
CREATE TABLE public.inh_parent (id int PRIMARY KEY, v text);
CREATE TABLE "Odd Schema"."inh child" (extra text) INHERITS (public.inh_parent);

-- Enough tables that restore.sh checks them in more than one query (100 names a query).
CREATE SCHEMA "many tables";
DO $$ BEGIN FOR i IN 1..70 LOOP EXECUTE format('CREATE TABLE "many tables".%I (id int)', 'table ' || i); END LOOP; END $$;

DO $$
DECLARE t regclass;
BEGIN
  FOREACH t IN ARRAY ARRAY[
    'public."with space"', 'public."dq""uote"', 'public."sq''uote"', 'public."do.t"', E'public."ta\tb"', E'public."new\nline"',
    'public."café"', 'public."🦣 emoji"', 'public."UPPER"', 'public."  spaces around  "', 'public."back\slash"', '"Odd Schema"."Mixed Case Table"',
    '"it''s ""here"""."a ""quoted"" ''name''"', '"dot.ted"."public.accounts"', E'"été 🐘"."naïve\ttab"', '"DATA".foo',
    '"ATTACH"."public parted_1"', '"a.b".c', 'a."b.c"', 'public.inh_parent'
  ]::regclass[]
  LOOP
    EXECUTE format('INSERT INTO %s (id, v) SELECT g, %L || g FROM generate_series(1, 3) g', t, t::text);
  END LOOP;
END $$;
INSERT INTO public.parted SELECT g, 1 + g % 6, 'p' || g FROM generate_series(1, 12) g;
INSERT INTO "Odd Schema"."inh child" VALUES (100, 'child', 'x'), (101, 'child 2', NULL);
