//! HPACK (RFC 7541) for the lean HTTP/2 client: a decoder for response header blocks and
//! the few encoding primitives a request needs.
//!
//! Why not a crate: `h2` keeps its HPACK private, and the maintained standalone decoder
//! (`loona-hpack`, the `hpack` fork) builds a 257-entry hash map for every Huffman string
//! and walks it bit by bit — tens of µs per response from servers that Huffman-code every
//! response (nginx does). Here the Huffman code is decoded with its canonical form (RFC
//! 7541's code is canonical: the code lengths alone define it), and the decoder hands
//! each field to a callback without allocating, except for entries it must keep in its
//! dynamic table. Requests are encoded in one pass; only the few fields a connection's
//! requests repeat (`:authority`, user-agent, accept…, and the request id's name) go
//! into the dynamic table ([`Encoder`]), so the server decodes them once per connection.

use std::collections::VecDeque;
use std::sync::OnceLock;

/// Why a header block could not be decoded; the HTTP/2 connection dies with
/// COMPRESSION_ERROR (RFC 9113 §4.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    #[error("header block ends in the middle of a field")]
    Truncated,
    #[error("integer too large")]
    IntegerOverflow,
    #[error("header index {0} is not in the table")]
    BadIndex(usize),
    #[error("invalid Huffman code")]
    BadHuffman,
    #[error("dynamic table size update to {0} above the limit")]
    TableSizeTooLarge(usize),
    #[error("dynamic table size update after the first field")]
    LateSizeUpdate,
}

/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The Huffman code length of each symbol 0..=256 (256 is EOS), RFC 7541 Appendix B.
/// The code is canonical, so these lengths define it.
const HUFFMAN_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const MIN_CODE_LEN: usize = 5;
const MAX_CODE_LEN: usize = 30;
const EOS: u16 = 256;

/// Canonical decoding tables: for each code length, the first code, how many codes have
/// that length, and where their symbols start in `symbols` (sorted by length, then value).
struct Canonical {
    /// For every 8-bit prefix: the symbol and code length when a code of at most 8 bits
    /// starts it (length 0 otherwise) — most header text decodes with one lookup.
    fast: [(u16, u8); 256],
    first: [u32; MAX_CODE_LEN + 1],
    count: [u32; MAX_CODE_LEN + 1],
    offset: [u32; MAX_CODE_LEN + 1],
    symbols: [u16; 257],
}

fn canonical() -> &'static Canonical {
    static TABLE: OnceLock<Canonical> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut c = Canonical {
            fast: [(0, 0); 256],
            first: [0; MAX_CODE_LEN + 1],
            count: [0; MAX_CODE_LEN + 1],
            offset: [0; MAX_CODE_LEN + 1],
            symbols: [0; 257],
        };
        for &len in &HUFFMAN_LENGTHS {
            c.count[len as usize] += 1;
        }
        let (mut next, mut offset) = (0u32, 0u32);
        for len in 1..=MAX_CODE_LEN {
            next = (next + c.count[len - 1]) << 1;
            c.first[len] = next;
            c.offset[len] = offset;
            offset += c.count[len];
        }
        let mut filled = c.offset;
        for (symbol, &len) in HUFFMAN_LENGTHS.iter().enumerate() {
            c.symbols[filled[len as usize] as usize] = symbol as u16;
            filled[len as usize] += 1;
        }
        for len in MIN_CODE_LEN..=8 {
            for index in 0..c.count[len] {
                let code = c.first[len] + index;
                let symbol = c.symbols[(c.offset[len] + index) as usize];
                let shift = 8 - len;
                for rest in 0..(1u32 << shift) {
                    c.fast[((code << shift) | rest) as usize] = (symbol, len as u8);
                }
            }
        }
        c
    })
}

/// Appends the Huffman decoding of `input` to `out`.
pub fn huffman_decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    let table = canonical();
    let mut acc: u64 = 0;
    let mut bits: usize = 0;
    // The longest code starting at the top of `acc`, trying lengths from `from`; `None`
    // when more bits are needed.
    let slow = |acc: u64, bits: usize, from: usize| -> Option<(u16, usize)> {
        (from..=MAX_CODE_LEN.min(bits)).find_map(|len| {
            let code = ((acc >> (bits - len)) & ((1u64 << len) - 1)) as u32;
            let index = code.wrapping_sub(table.first[len]);
            (code >= table.first[len] && index < table.count[len])
                .then(|| (table.symbols[(table.offset[len] + index) as usize], len))
        })
    };
    let emit = |symbol: u16, out: &mut Vec<u8>| {
        if symbol == EOS {
            return Err(HpackError::BadHuffman);
        }
        out.push(symbol as u8);
        Ok(())
    };
    for &byte in input {
        acc = (acc << 8) | u64::from(byte);
        bits += 8;
        while bits >= 8 {
            let (symbol, len) = table.fast[((acc >> (bits - 8)) & 0xff) as usize];
            let (symbol, len) = if len != 0 {
                (symbol, len as usize)
            } else {
                match slow(acc, bits, 9) {
                    Some(found) => found,
                    None if bits >= MAX_CODE_LEN => return Err(HpackError::BadHuffman),
                    None => break,
                }
            };
            emit(symbol, out)?;
            bits -= len;
            acc &= (1u64 << bits) - 1;
        }
    }
    // The last bits: short codes, then padding of fewer than 8 bits, all ones (RFC 7541
    // §5.2).
    while bits >= MIN_CODE_LEN {
        let Some((symbol, len)) = slow(acc, bits, MIN_CODE_LEN) else {
            break;
        };
        emit(symbol, out)?;
        bits -= len;
        acc &= (1u64 << bits) - 1;
    }
    if bits >= 8 || acc != (1u64 << bits) - 1 {
        return Err(HpackError::BadHuffman);
    }
    Ok(())
}

/// Reads an integer with an `prefix_bits`-bit prefix (RFC 7541 §5.1) at `block[*at]`.
fn decode_int(block: &[u8], at: &mut usize, prefix_bits: u8) -> Result<usize, HpackError> {
    let mask = (1usize << prefix_bits) - 1;
    let first = *block.get(*at).ok_or(HpackError::Truncated)? as usize & mask;
    *at += 1;
    if first < mask {
        return Ok(first);
    }
    let mut value = mask;
    let mut shift = 0;
    loop {
        let byte = *block.get(*at).ok_or(HpackError::Truncated)?;
        *at += 1;
        if shift > 21 {
            return Err(HpackError::IntegerOverflow);
        }
        value += ((byte & 0x7f) as usize) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// Appends an integer with an `prefix_bits`-bit prefix; `flags` fills the bits above it.
pub fn encode_int(out: &mut Vec<u8>, flags: u8, prefix_bits: u8, value: usize) {
    let mask = (1usize << prefix_bits) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Appends a string literal without Huffman coding (cheaper to write than to compress).
pub fn encode_str(out: &mut Vec<u8>, bytes: &[u8]) {
    encode_int(out, 0, 7, bytes.len());
    out.extend_from_slice(bytes);
}

/// A field "literal without indexing" whose name is static-table entry `index`.
pub fn encode_indexed_name(out: &mut Vec<u8>, index: usize, value: &[u8]) {
    encode_int(out, 0x00, 4, index);
    encode_str(out, value);
}

/// A field with a literal name: without indexing, or never indexed when `sensitive`
/// (an intermediary must not compress it either; used for the unique request id).
pub fn encode_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8], sensitive: bool) {
    out.push(if sensitive { 0x10 } else { 0x00 });
    encode_str(out, name);
    encode_str(out, value);
}

/// Request fields worth the dynamic table: the same on every request of a connection
/// (the target, the default and profile headers). Corpus payloads travel in paths, bodies
/// and other headers, so they never churn the table. Name and static-table name index.
const INDEXED_FIELDS: [(&[u8], usize); 6] = [
    (b":authority", 1),
    (b"user-agent", 58),
    (b"accept", 19),
    (b"accept-encoding", 16),
    (b"accept-language", 17),
    (b"content-type", 31),
];
/// Values longer than this are sent as literals (a payload put in user-agent, say).
const MAX_INDEXED_VALUE: usize = 256;
/// The encoder's table size, at most (the server may allow less).
const ENCODER_TABLE_SIZE: usize = 4096;
/// RFC 7541 §4.1: an entry's size is its name and value plus 32.
const ENTRY_OVERHEAD: usize = 32;

/// The request side's HPACK dynamic table, kept in step with the server's decoder:
/// fields in [`INDEXED_FIELDS`] are sent once with incremental indexing and as a one-byte
/// index after that; the request id's name is indexed once and referenced by every
/// later id (whose value is never indexed). Only the entries' sizes are kept — enough to
/// evict exactly as the decoder does — plus, per indexed name, the value last inserted.
#[derive(Debug, Default)]
pub struct Encoder {
    /// Sizes of the table's entries, newest first.
    sizes: VecDeque<usize>,
    size: usize,
    /// 0 until the server's SETTINGS are known: no indexing before that.
    max_size: usize,
    limit_known: bool,
    /// Entries inserted so far; entry `a` (0-based, in insertion order) is alive while
    /// `a >= inserted - sizes.len()`.
    inserted: u64,
    /// A table size to announce at the start of the next header block.
    pending_update: Option<usize>,
    /// Per indexed field: the value last inserted and its entry number.
    fields: [Option<(Vec<u8>, u64)>; INDEXED_FIELDS.len()],
    /// The request id's name and the entry that carries it.
    id_name: Option<(Vec<u8>, u64)>,
}

impl Encoder {
    /// The server's SETTINGS_HEADER_TABLE_SIZE (4096 unless it says otherwise), known once
    /// its SETTINGS arrive; the table is used from then on, announced in the next block.
    pub fn set_limit(&mut self, server_limit: usize) {
        let new = server_limit.min(ENCODER_TABLE_SIZE);
        if self.limit_known && new == self.max_size {
            return;
        }
        self.limit_known = true;
        self.max_size = new;
        self.evict_to(new);
        self.pending_update = Some(new);
    }

    /// Starts a header block: announces a changed table size first (RFC 7541 §4.2).
    pub fn begin_block(&mut self, out: &mut Vec<u8>) {
        if let Some(size) = self.pending_update.take() {
            encode_int(out, 0x20, 5, size);
        }
    }

    /// Encodes `name: value`, from the dynamic table when it is one of the indexed fields.
    pub fn field(&mut self, out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
        let slot = INDEXED_FIELDS.iter().position(|(n, _)| *n == name);
        match slot {
            Some(slot) if self.max_size > 0 && value.len() <= MAX_INDEXED_VALUE => {
                if let Some(index) = self.fields[slot]
                    .as_ref()
                    .filter(|(v, _)| v == value)
                    .and_then(|(_, entry)| self.index_of(*entry))
                {
                    encode_int(out, 0x80, 7, index);
                    return;
                }
                encode_int(out, 0x40, 6, INDEXED_FIELDS[slot].1);
                encode_str(out, value);
                if let Some(entry) = self.insert(name.len() + value.len()) {
                    let mut kept = self.fields[slot].take().map(|(v, _)| v).unwrap_or_default();
                    kept.clear();
                    kept.extend_from_slice(value);
                    self.fields[slot] = Some((kept, entry));
                }
            }
            _ => match static_name_index(name) {
                Some(index) => encode_indexed_name(out, index, value),
                None => encode_literal(out, name, value, false),
            },
        }
    }

    /// Encodes the request id: never indexed (it is unique), its name from the table.
    pub fn request_id(&mut self, out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
        if self.max_size == 0 {
            encode_literal(out, name, value, true);
            return;
        }
        if let Some(index) = self
            .id_name
            .as_ref()
            .filter(|(n, _)| n == name)
            .and_then(|(_, entry)| self.index_of(*entry))
        {
            encode_int(out, 0x10, 4, index);
            encode_str(out, value);
            return;
        }
        // Literal with incremental indexing, new name: this id's entry carries the name for
        // the ids after it.
        out.push(0x40);
        encode_str(out, name);
        encode_str(out, value);
        self.id_name = self
            .insert(name.len() + value.len())
            .map(|entry| (name.to_vec(), entry));
    }

    /// The HPACK index of entry `entry`, if it is still in the table.
    fn index_of(&self, entry: u64) -> Option<usize> {
        let oldest = self.inserted - self.sizes.len() as u64;
        (entry >= oldest && entry < self.inserted)
            .then(|| STATIC_TABLE.len() + 1 + (self.inserted - 1 - entry) as usize)
    }

    /// Adds an entry of `len` name + value bytes, evicting as the decoder will; the new
    /// entry's number, or `None` when it is larger than the table (which it empties).
    fn insert(&mut self, len: usize) -> Option<u64> {
        let size = len + ENTRY_OVERHEAD;
        if size > self.max_size {
            self.evict_to(0);
            return None;
        }
        self.evict_to(self.max_size - size);
        self.sizes.push_front(size);
        self.size += size;
        self.inserted += 1;
        Some(self.inserted - 1)
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            match self.sizes.pop_back() {
                Some(oldest) => self.size -= oldest,
                None => break,
            }
        }
    }
}

/// The static-table index of a header name, for the names requests commonly carry.
pub fn static_name_index(name: &[u8]) -> Option<usize> {
    STATIC_TABLE
        .iter()
        .position(|(n, _)| *n == name)
        .map(|i| i + 1)
}

/// Decodes response header blocks, keeping the dynamic table in step with the server's
/// encoder across the connection.
/// A dynamic table entry: name and value in one buffer, and where the name ends.
/// Buffers of evicted entries are reused, so a server that indexes a unique header per
/// response (an echoed request id) costs no allocation per response.
struct Entry {
    bytes: Vec<u8>,
    name_len: usize,
}

impl Entry {
    fn name(&self) -> &[u8] {
        &self.bytes[..self.name_len]
    }
    fn value(&self) -> &[u8] {
        &self.bytes[self.name_len..]
    }
    fn size(&self) -> usize {
        self.bytes.len() + 32
    }
}

pub struct Decoder {
    table: VecDeque<Entry>,
    spare: Vec<Vec<u8>>,
    size: usize,
    max_size: usize,
    /// The most the server may set the table to: our SETTINGS_HEADER_TABLE_SIZE.
    limit: usize,
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::with_limit(4096)
    }
}

/// Where a literal's name or value lives while the field is handed over.
enum Text {
    Block(usize, usize),
    Buffer,
    Static(&'static [u8]),
}

impl Decoder {
    pub fn with_limit(limit: usize) -> Self {
        Decoder {
            table: VecDeque::new(),
            spare: Vec::new(),
            size: 0,
            max_size: limit,
            limit,
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// Decodes one whole header block (HEADERS plus CONTINUATIONs), calling `field` for
    /// every (name, value) in order.
    pub fn decode(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut at = 0;
        let mut fields = 0usize;
        while at < block.len() {
            let first = block[at];
            if first & 0x80 != 0 {
                let index = decode_int(block, &mut at, 7)?;
                let (name, value) = self.entry(index)?;
                field(name, value);
            } else if first & 0xe0 == 0x20 {
                if fields > 0 {
                    return Err(HpackError::LateSizeUpdate);
                }
                let size = decode_int(block, &mut at, 5)?;
                if size > self.limit {
                    return Err(HpackError::TableSizeTooLarge(size));
                }
                self.max_size = size;
                self.evict_to(size);
                continue;
            } else {
                let (prefix, indexing) = if first & 0x40 != 0 {
                    (6, true)
                } else {
                    (4, false)
                };
                let index = decode_int(block, &mut at, prefix)?;
                let name = if index == 0 {
                    self.string(block, &mut at, true)?
                } else if index <= STATIC_TABLE.len() {
                    Text::Static(STATIC_TABLE[index - 1].0)
                } else {
                    // Copied: inserting this field may evict the entry it names.
                    let entry = index
                        .checked_sub(STATIC_TABLE.len() + 1)
                        .and_then(|i| self.table.get(i))
                        .ok_or(HpackError::BadIndex(index))?;
                    self.name_buf.clear();
                    self.name_buf.extend_from_slice(entry.name());
                    Text::Buffer
                };
                let value = self.string(block, &mut at, false)?;
                let mut bytes = match indexing {
                    true => self.spare.pop().unwrap_or_default(),
                    false => Vec::new(),
                };
                let name = self.resolve(&name, block, true);
                let value = self.resolve(&value, block, false);
                field(name, value);
                if indexing {
                    bytes.clear();
                    bytes.extend_from_slice(name);
                    bytes.extend_from_slice(value);
                    let name_len = name.len();
                    self.insert(Entry { bytes, name_len });
                }
            }
            fields += 1;
        }
        Ok(())
    }

    fn resolve<'a>(&'a self, text: &Text, block: &'a [u8], is_name: bool) -> &'a [u8] {
        match *text {
            Text::Block(start, end) => &block[start..end],
            Text::Static(s) => s,
            Text::Buffer if is_name => &self.name_buf,
            Text::Buffer => &self.value_buf,
        }
    }

    /// Reads a string literal; Huffman strings are decoded into the name or value buffer.
    fn string(&mut self, block: &[u8], at: &mut usize, is_name: bool) -> Result<Text, HpackError> {
        let huffman = *block.get(*at).ok_or(HpackError::Truncated)? & 0x80 != 0;
        let len = decode_int(block, at, 7)?;
        let end = at.checked_add(len).ok_or(HpackError::Truncated)?;
        if end > block.len() {
            return Err(HpackError::Truncated);
        }
        let start = *at;
        *at = end;
        if !huffman {
            return Ok(Text::Block(start, end));
        }
        let buf = if is_name {
            &mut self.name_buf
        } else {
            &mut self.value_buf
        };
        buf.clear();
        huffman_decode(&block[start..end], buf)?;
        Ok(Text::Buffer)
    }

    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        if index == 0 {
            return Err(HpackError::BadIndex(0));
        }
        if index <= STATIC_TABLE.len() {
            return Ok(STATIC_TABLE[index - 1]);
        }
        self.entry_at(index).map(|e| (e.name(), e.value()))
    }

    fn entry_at(&self, index: usize) -> Result<&Entry, HpackError> {
        index
            .checked_sub(STATIC_TABLE.len() + 1)
            .and_then(|i| self.table.get(i))
            .ok_or(HpackError::BadIndex(index))
    }

    fn insert(&mut self, entry: Entry) {
        let size = entry.size();
        if size > self.max_size {
            // RFC 7541 §4.4: an entry larger than the table empties it and is not added.
            self.evict_to(0);
            self.spare.push(entry.bytes);
            return;
        }
        self.evict_to(self.max_size - size);
        self.size += size;
        self.table.push_front(entry);
    }

    fn evict_to(&mut self, size: usize) {
        while self.size > size {
            let Some(entry) = self.table.pop_back() else {
                self.size = 0;
                break;
            };
            self.size -= entry.size();
            if self.spare.len() < 64 {
                self.spare.push(entry.bytes);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The encoder's table must stay in step with the server's decoder through evictions,
    /// entries larger than the table and table size changes: every block decodes to exactly
    /// the fields encoded.
    #[test]
    fn encoder_table_stays_in_step_with_the_decoder() {
        let mut encoder = Encoder::default();
        let mut decoder = Decoder::default();
        let mut indexed = 0;
        for round in 0..400u32 {
            match round {
                0 => encoder.set_limit(4096),
                100 => encoder.set_limit(150), // a few entries: evictions all the time
                200 => encoder.set_limit(40),  // smaller than most entries: the table empties
                300 => encoder.set_limit(1 << 20), // capped at 4096
                _ => {}
            }
            let ua = if round % 3 == 0 {
                format!("payload-{}", "x".repeat((round % 40) as usize))
            } else {
                "wafload/0.1".to_string()
            };
            let id = format!("wl-{round}");
            let mut block = Vec::new();
            encoder.begin_block(&mut block);
            encoder.field(&mut block, b":authority", b"127.0.0.1:8080");
            encoder.field(&mut block, b"user-agent", ua.as_bytes());
            encoder.field(&mut block, b"x-custom", b"not indexed");
            encoder.field(&mut block, b"accept", b"*/*");
            encoder.request_id(&mut block, b"x-request-id", id.as_bytes());
            indexed += block.iter().filter(|b| **b >= 0x80).count();
            assert_eq!(
                decode_pairs(&mut decoder, &block),
                pairs(&[
                    (":authority", "127.0.0.1:8080"),
                    ("user-agent", &ua),
                    ("x-custom", "not indexed"),
                    ("accept", "*/*"),
                    ("x-request-id", &id),
                ]),
                "round {round}"
            );
        }
        assert!(
            indexed > 300,
            "the table was used: {indexed} indexed fields"
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Decodes the hex-written `block` with `d`.
    fn fields(d: &mut Decoder, block: &str) -> Vec<(String, String)> {
        decode_pairs(d, &hex(block))
    }

    /// Decodes `block` with `d`, as (name, value) pairs.
    pub(crate) fn decode_pairs(d: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        d.decode(block, |n, v| {
            out.push((
                String::from_utf8(n.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            ))
        })
        .unwrap();
        out
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn huffman_strings_of_rfc7541_appendix_c() {
        for (encoded, text) in [
            ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
            ("a8eb 1064 9cbf", "no-cache"),
            ("25a8 49e9 5ba9 7d7f", "custom-key"),
            ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
            ("6402", "302"),
            ("aec3 771a 4b", "private"),
        ] {
            let mut out = Vec::new();
            huffman_decode(&hex(encoded), &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }

    /// Huffman-encodes with the canonical code (test only: requests are sent raw).
    fn huffman_encode(text: &[u8]) -> Vec<u8> {
        let t = canonical();
        let (mut acc, mut bits, mut out) = (0u64, 0usize, Vec::new());
        for &b in text {
            let len = HUFFMAN_LENGTHS[b as usize] as usize;
            let pos = (t.offset[len]..t.offset[len] + t.count[len])
                .find(|&i| t.symbols[i as usize] == u16::from(b))
                .unwrap();
            acc = (acc << len) | u64::from(t.first[len] + pos - t.offset[len]);
            bits += len;
            while bits >= 8 {
                out.push((acc >> (bits - 8)) as u8);
                bits -= 8;
                acc &= (1u64 << bits) - 1;
            }
        }
        if bits > 0 {
            out.push(((acc << (8 - bits)) | ((1u64 << (8 - bits)) - 1)) as u8);
        }
        out
    }

    #[test]
    fn every_byte_value_round_trips_through_huffman() {
        // Short and long codes mixed, so the one-lookup path and the canonical walk meet
        // at every boundary, and strings end on every bit offset.
        let all: Vec<u8> = (0..=255u8).collect();
        for take in [1, 2, 3, 7, 64, 256] {
            for window in all.windows(take).step_by(13) {
                let mut text = window.to_vec();
                text.extend_from_slice(b"e0");
                let mut out = Vec::new();
                huffman_decode(&huffman_encode(&text), &mut out).unwrap();
                assert_eq!(out, text);
            }
        }
        assert_eq!(
            huffman_encode(b"www.example.com"),
            hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")
        );
    }

    #[test]
    fn bad_huffman_padding_is_an_error() {
        let mut out = Vec::new();
        // "private" with its last padding bit cleared; "302" followed by a whole byte of
        // padding (RFC 7541 §5.2 allows at most 7 bits).
        for bad in ["aec3 771a 4a", "6402 ff"] {
            assert_eq!(
                huffman_decode(&hex(bad), &mut out),
                Err(HpackError::BadHuffman),
                "{bad}"
            );
        }
    }

    #[test]
    fn requests_of_rfc7541_c4_share_a_dynamic_table() {
        let mut d = Decoder::default();
        assert_eq!(
            fields(&mut d, "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ])
        );
        assert_eq!(
            fields(&mut d, "8286 84be 5886 a8eb 1064 9cbf"),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache")
            ])
        );
        assert_eq!(
            fields(
                &mut d,
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"
            ),
            pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value")
            ])
        );
        assert_eq!(d.size, 164);
    }

    #[test]
    fn responses_of_rfc7541_c6_evict_from_a_256_byte_table() {
        let mut d = Decoder::with_limit(256);
        let first = fields(
            &mut d,
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        );
        assert_eq!(
            first,
            pairs(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com")
            ])
        );
        assert_eq!(d.size, 222);
        let second = fields(&mut d, "4883 640e ffc1 c0bf");
        assert_eq!(second[0], pairs(&[(":status", "307")])[0]);
        assert_eq!(second[1..], first[1..]);
        let third = fields(
            &mut d,
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        );
        assert_eq!(
            third,
            pairs(&[
                (":status", "200"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
                ("location", "https://www.example.com"),
                ("content-encoding", "gzip"),
                (
                    "set-cookie",
                    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
                )
            ])
        );
        assert_eq!(d.size, 215);
    }

    #[test]
    fn truncated_and_out_of_range_blocks_are_errors_not_panics() {
        let mut d = Decoder::default();
        for (block, error) in [
            ("be", HpackError::BadIndex(62)),
            ("80", HpackError::BadIndex(0)),
            ("4088 25a8", HpackError::Truncated),
            ("ff", HpackError::Truncated),
            ("ffff ffff ffff ff", HpackError::IntegerOverflow),
            ("3fe2 1f", HpackError::TableSizeTooLarge(4097)),
            ("8220", HpackError::LateSizeUpdate),
        ] {
            assert_eq!(d.decode(&hex(block), |_, _| {}), Err(error), "{block}");
        }
    }

    #[test]
    fn encoded_request_fields_decode_back() {
        let mut block = Vec::new();
        block.push(0x82);
        encode_indexed_name(&mut block, 4, b"/a/very/long/path/".repeat(10).as_slice());
        encode_literal(&mut block, b"x-request-id", b"r-123", true);
        encode_int(&mut block, 0, 4, static_name_index(b"user-agent").unwrap());
        encode_str(&mut block, b"wafload");
        let mut d = Decoder::default();
        let got = fields(
            &mut d,
            &block.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        );
        assert_eq!(got[0], (":method".into(), "GET".into()));
        assert_eq!(got[1].1.len(), 180);
        assert_eq!(got[2], ("x-request-id".into(), "r-123".into()));
        assert_eq!(got[3], ("user-agent".into(), "wafload".into()));
        assert_eq!(d.size, 0, "nothing was indexed");
    }
}
