//! Interned strings: every name of the index (types, ids, relations) once, in one arena.
//!
//! A symbol is the byte offset of its string's record in the arena, and a record is a
//! short length header followed by the string's bytes. Resolving a name is a hash probe
//! (the control bytes and the bucket) and one read of the arena, where the header and
//! the bytes sit side by side; the name of a symbol is one read. No allocation, no
//! pointer and no offset table per string: at a million relationships the lookups of a
//! check's two ids are the first cache misses it takes (docs/BENCHMARKS.md, "Check p50
//! at 1M").
//!
//! The header is the length in groups of six bits, low group first, each group one ASCII
//! byte with `0x40` set when another group follows: one byte up to 63, two up to 4,095
//! (names are at most 1,024 bytes). Being ASCII, it keeps the arena valid UTF-8 and every
//! record start a character boundary, so a name is a plain `&str` slice.

use super::{NO_REL, Sym};

/// The arena of names and the table that finds a name's symbol.
#[derive(Clone, Default)]
pub(crate) struct Interner {
    /// Every record, one after the other; a symbol is where its record starts.
    text: String,
    /// How many names.
    count: usize,
    by_name: hashbrown::HashTable<Sym>,
}

/// Which offsets of an arena start a record: what a symbol read from outside (an index
/// image) must be.
pub(crate) struct Starts(Vec<u64>);

impl Starts {
    pub fn contains(&self, sym: Sym) -> bool {
        let sym = sym as usize;
        self.0
            .get(sym / 64)
            .is_some_and(|word| word & (1 << (sym % 64)) != 0)
    }
}

/// The bounds of the string of the record at `sym` in `arena`, if one fits there.
#[inline]
fn record(arena: &[u8], sym: Sym) -> Option<(usize, usize)> {
    let mut pos = sym as usize;
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let byte = *arena.get(pos)?;
        pos += 1;
        len |= usize::from(byte & 0x3F) << shift;
        if byte & 0x40 == 0 {
            break;
        }
        shift += 6;
        if shift > 30 {
            return None;
        }
    }
    let end = pos.checked_add(len)?;
    (end <= arena.len()).then_some((pos, end))
}

fn push_header(text: &mut String, mut len: usize) {
    loop {
        let group = (len & 0x3F) as u8;
        len >>= 6;
        if len == 0 {
            text.push(char::from(group));
            return;
        }
        text.push(char::from(group | 0x40));
    }
}

#[inline]
fn hash_bytes(name: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(name);
    hasher.finish()
}

/// The string of the record at `sym` (empty if there is none: never for a symbol the
/// interner gave out).
fn name_at(text: &str, sym: Sym) -> &str {
    record(text.as_bytes(), sym)
        .and_then(|(start, end)| text.get(start..end))
        .unwrap_or("")
}

impl Interner {
    /// The symbol of `name`, if interned. Every check resolves its names here.
    #[inline]
    pub fn get(&self, name: &str) -> Option<Sym> {
        let arena = self.text.as_bytes();
        let name = name.as_bytes();
        let hash = hash_bytes(name);
        let len = name.len();
        let found = if len < 0x40 {
            // The usual name: a one-byte header, the length itself.
            let header = len as u8;
            self.by_name.find(hash, |sym| {
                let start = *sym as usize;
                arena.get(start) == Some(&header)
                    && arena.get(start + 1..start + 1 + len) == Some(name)
            })
        } else {
            self.by_name.find(hash, |sym| {
                record(arena, *sym).is_some_and(|(start, end)| &arena[start..end] == name)
            })
        };
        found.copied()
    }

    /// The symbol of `name`, interning it if it is new.
    pub fn intern(&mut self, name: &str) -> Sym {
        let hash = hash_bytes(name.as_bytes());
        let text = &self.text;
        if let Some(sym) = self.by_name.find(hash, |it| name_at(text, *it) == name) {
            return *sym;
        }
        // INVARIANT: fewer than 4 GiB of names in all (a million relationships take a
        // few MiB), so every symbol fits in a u32 and none equals NO_REL.
        let sym = self.text.len() as Sym;
        push_header(&mut self.text, name.len());
        self.text.push_str(name);
        self.count += 1;
        let text = &self.text;
        self.by_name
            .insert_unique(hash, sym, |it| hash_bytes(name_at(text, *it).as_bytes()));
        sym
    }

    /// The string behind `sym` (empty for a symbol this interner did not give out and
    /// that does not happen to start a record).
    pub fn name(&self, sym: Sym) -> &str {
        name_at(&self.text, sym)
    }

    /// How many names are interned.
    pub fn len(&self) -> usize {
        self.count
    }

    /// The arena, for an index image.
    pub fn arena(&self) -> &str {
        &self.text
    }

    /// An interner from an image's arena of `count` records, with the offsets that start
    /// one; `None` unless every record is whole and every name distinct.
    pub fn from_arena(text: String, count: usize) -> Option<(Self, Starts)> {
        if text.len() >= NO_REL as usize {
            return None;
        }
        let mut by_name = hashbrown::HashTable::with_capacity(count);
        let mut starts = vec![0u64; text.len().div_ceil(64)];
        let mut sym = 0usize;
        let mut n = 0usize;
        while sym < text.len() {
            let (start, end) = record(text.as_bytes(), sym as Sym)?;
            let name = text.get(start..end)?;
            let hash = hash_bytes(name.as_bytes());
            if by_name
                .find(hash, |it| name_at(&text, *it) == name)
                .is_some()
            {
                return None;
            }
            by_name.insert_unique(hash, sym as Sym, |it| {
                hash_bytes(name_at(&text, *it).as_bytes())
            });
            starts[sym / 64] |= 1 << (sym % 64);
            n += 1;
            sym = end;
        }
        (n == count).then_some((
            Self {
                text,
                count,
                by_name,
            },
            Starts(starts),
        ))
    }

    /// Heap bytes (allocator overhead not included).
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.by_name.capacity() * (std::mem::size_of::<Sym>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_at_every_header_length() {
        let mut strings = Interner::default();
        let names: Vec<String> = [0usize, 1, 5, 62, 63, 64, 65, 1024, 4095, 4096, 70_000]
            .iter()
            .enumerate()
            .map(|(i, len)| format!("{i}{}", "x".repeat(*len)))
            .chain(["*".to_string(), "é∂ü".to_string(), String::new()])
            .collect();
        let syms: Vec<Sym> = names.iter().map(|it| strings.intern(it)).collect();
        for (name, sym) in names.iter().zip(&syms) {
            assert_eq!(strings.intern(name), *sym, "{name}: interned twice");
            assert_eq!(strings.get(name), Some(*sym));
            assert_eq!(strings.name(*sym), name);
        }
        assert_eq!(strings.len(), names.len());
        assert_eq!(strings.get("absent"), None);
        assert_eq!(strings.get("1"), None, "a prefix of a name is not the name");
        // Symbols grow with the arena, in the order of interning.
        assert!(syms.windows(2).all(|it| it[0] < it[1]));
    }

    #[test]
    fn an_arena_rebuilds_the_same_interner_and_refuses_damage() {
        let mut strings = Interner::default();
        let syms: Vec<Sym> = ["*", "document", "d1", &"y".repeat(300)]
            .iter()
            .map(|it| strings.intern(it))
            .collect();
        let (copy, starts) =
            Interner::from_arena(strings.arena().to_owned(), strings.len()).expect("whole");
        for sym in &syms {
            assert!(starts.contains(*sym));
            assert_eq!(copy.get(strings.name(*sym)), Some(*sym));
        }
        assert!(
            !starts.contains(syms[1] + 1),
            "inside a record is not a symbol"
        );
        assert!(!starts.contains(NO_REL));
        let arena = strings.arena().to_owned();
        assert!(Interner::from_arena(arena.clone(), 3).is_none(), "count");
        assert!(Interner::from_arena(arena[..arena.len() - 1].to_owned(), 4).is_none());
        let twice = format!("{arena}{arena}");
        assert!(Interner::from_arena(twice, 8).is_none(), "a name twice");
    }
}
