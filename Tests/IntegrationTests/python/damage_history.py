"""Damages a stopped zpubd's history file the two ways a disk does, in two blocks of messages:
the second block's records cut in the middle of a record (bytes that no longer parse, which SQLite cannot see),
and one page in the middle of a later block's overflow chain zeroed (a page SQLite reports
as damaged when the block is read): the first from the fourth on, not the last, whose chain
has three pages at least (blocks are as large as what the writer found queued, so under load
some hold a few messages only). Python's sqlite3 module and plain file writes, nothing of
zpub's. Prints JSON: the blocks' first sequences, and which two were damaged.
Usage: damage_history.py HISTORY_FILE"""
import json
import os
import sqlite3
import sys

path = sys.argv[1]
if os.path.exists(path + "-wal") and os.path.getsize(path + "-wal") > 0:
    sys.exit(path + "-wal is not empty: stop zpubd cleanly first")

database = sqlite3.connect(path)
blocks = [row[0] for row in database.execute("SELECT first_seq FROM blocks ORDER BY first_seq")]
if len(blocks) < 5:
    sys.exit("only %d blocks: five are needed" % len(blocks))
truncated = blocks[1]
database.execute(
    # Not at half exactly: records of one size would end there, and the cut block parse.
    "UPDATE blocks SET records = substr(records, 1, length(records) / 2 + 3) WHERE first_seq = ?", (truncated,))
database.commit()
page_size = database.execute("PRAGMA page_size").fetchone()[0]
# dbstat names pages by their path in the table's b-tree (hex, zero-padded: in key order when
# sorted). The leaves' cells, in order, are the rows in order of first_seq; a cell's overflow
# pages are "LEAFPATH" + its index + "+" + their place in its chain.
cells = []
for leaf, count in database.execute(
        "SELECT path, ncell FROM dbstat WHERE name = 'blocks' AND pagetype = 'leaf' ORDER BY path"):
    cells += [leaf + format(index, "03x") for index in range(count)]
if len(cells) != len(blocks):
    sys.exit("%d cells in the leaves for %d blocks" % (len(cells), len(blocks)))
overflow = list(database.execute(
    "SELECT path, pageno FROM dbstat WHERE name = 'blocks' AND pagetype = 'overflow' ORDER BY path"))
zeroed, chain = None, []
for index in range(3, len(blocks) - 1):
    chain = [page for page_path, page in overflow if page_path.startswith(cells[index] + "+")]
    if len(chain) >= 3:
        zeroed = blocks[index]
        break
database.close()
if os.path.exists(path + "-wal") and os.path.getsize(path + "-wal") > 0:
    sys.exit("the update is still in " + path + "-wal")
if zeroed is None:
    sys.exit("no block from the fourth to the one before the last has three overflow pages: %s" % blocks)
with open(path, "r+b") as file:
    file.seek((chain[len(chain) // 2] - 1) * page_size)
    file.write(bytes(page_size))
print(json.dumps({"blocks": blocks, "truncated": truncated, "zeroed": zeroed}))
