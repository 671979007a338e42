//! The stack machine: pickle protocols 2 to 5 without out-of-band buffers, executed over data
//! only. Memoised objects live in a table and are shared by reference until the end, when the
//! result is expanded under a size and depth budget.

use std::collections::HashMap;

use super::globals::{self, Builtin};
use super::value::Value;
use super::{PickleError, Policy};

/// Most nested levels a result may have.
const MAX_DEPTH: usize = 256;
/// Most values the result (and every call's arguments) may expand to in all.
const MAX_NODES: usize = 4_000_000;

/// Reads the pickle `bytes` without running any of it.
///
/// # Errors
/// [`PickleError`]: a global that is not allowed (with its name), a call the reader does not
/// interpret, an unsupported opcode, truncation, malformed programs, or a result past the
/// limits.
pub fn unpickle(bytes: &[u8], policy: &Policy) -> Result<Value, PickleError> {
    Machine {
        bytes,
        pos: 0,
        policy,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        budget: MAX_NODES,
        op_at: 0,
    }
    .run()
}

/// A value on the machine's stack: plain, a container that may hold references (with its
/// nesting depth, kept so that no container deeper than [`MAX_DEPTH`] is ever built: dropping
/// one would recurse that deep), or a reference to a memo entry.
#[derive(Debug, Clone)]
enum Node {
    Val(Value),
    Seq(Seq, Vec<Node>, usize),
    Dict(Vec<(Node, Node)>, usize),
    Ref(usize),
}

/// The kinds of sequence a pickle builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seq {
    List,
    Tuple,
    Set,
}

impl Node {
    fn depth(&self) -> usize {
        match self {
            Node::Seq(_, _, depth) | Node::Dict(_, depth) => *depth,
            Node::Val(_) | Node::Ref(_) => 0,
        }
    }
}

/// Refuses a container nested past [`MAX_DEPTH`].
fn nested(depth: usize) -> Result<usize, PickleError> {
    if depth > MAX_DEPTH {
        return Err(PickleError::TooLarge {
            limit: "256 nested levels",
        });
    }
    Ok(depth)
}

fn seq(kind: Seq, items: Vec<Node>) -> Result<Node, PickleError> {
    let depth = nested(1 + items.iter().map(Node::depth).max().unwrap_or(0))?;
    Ok(Node::Seq(kind, items, depth))
}

fn dict(pairs: Vec<(Node, Node)>) -> Result<Node, PickleError> {
    let deepest = pairs.iter().map(|(k, v)| k.depth().max(v.depth())).max();
    let depth = nested(1 + deepest.unwrap_or(0))?;
    Ok(Node::Dict(pairs, depth))
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    policy: &'a Policy,
    stack: Vec<Node>,
    marks: Vec<usize>,
    memo: HashMap<usize, Node>,
    budget: usize,
    op_at: usize,
}

impl Machine<'_> {
    fn run(mut self) -> Result<Value, PickleError> {
        loop {
            self.op_at = self.pos;
            let op = self.take(1, "opcode")?[0];
            match op {
                0x80 => drop(self.take(1, "protocol")?),
                0x95 => drop(self.take(8, "frame size")?),
                b'.' => {
                    let top = self.pop()?;
                    return self.resolve(&top, 0);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => drop(self.pop()?),
                b'1' => drop(self.pop_mark()?),
                b'2' => self.dup()?,
                b'J' => {
                    let v = i32::from_le_bytes(self.array("int")?);
                    self.push(Value::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.take(1, "int")?[0];
                    self.push(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array("int")?);
                    self.push(Value::Int(i64::from(v)));
                }
                0x8a => {
                    let n = usize::from(self.take(1, "long size")?[0]);
                    self.long(n)?;
                }
                0x8b => {
                    let n = self.len4("long size")?;
                    self.long(n)?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.array("float")?);
                    self.push(Value::Float(v));
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'X' => {
                    let n = self.len4("str length")?;
                    self.text(n)?;
                }
                0x8c => {
                    let n = usize::from(self.take(1, "str length")?[0]);
                    self.text(n)?;
                }
                0x8d => {
                    let n = self.len8("str length")?;
                    self.text(n)?;
                }
                b'C' => {
                    let n = usize::from(self.take(1, "bytes length")?[0]);
                    self.raw(n)?;
                }
                b'B' => {
                    let n = self.len4("bytes length")?;
                    self.raw(n)?;
                }
                0x8e => {
                    let n = self.len8("bytes length")?;
                    self.raw(n)?;
                }
                b'U' | b'T' => {
                    let n = if op == b'U' {
                        usize::from(self.take(1, "string length")?[0])
                    } else {
                        self.len4("string length")?
                    };
                    let latin1 = self.take(n, "string")?.iter().map(|&b| char::from(b));
                    let text = latin1.collect();
                    self.push(Value::Str(text));
                }
                b']' => self.stack.push(Node::Seq(Seq::List, Vec::new(), 1)),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(seq(Seq::List, items)?);
                }
                b')' => self.stack.push(Node::Seq(Seq::Tuple, Vec::new(), 1)),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(seq(Seq::Tuple, items)?);
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let floor = self.marks.last().copied().unwrap_or(0);
                    let at = self.stack.len().checked_sub(n).filter(|&at| at >= floor);
                    let at = at.ok_or_else(|| self.bad("stack underflow"))?;
                    let items = self.stack.split_off(at);
                    self.stack.push(seq(Seq::Tuple, items)?);
                }
                b'}' => self.stack.push(Node::Dict(Vec::new(), 1)),
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.stack.push(dict(pairs)?);
                }
                0x8f => self.stack.push(Node::Seq(Seq::Set, Vec::new(), 1)),
                0x91 => {
                    let items = self.pop_mark()?;
                    self.stack.push(seq(Seq::Set, items)?);
                }
                b'a' => {
                    let item = self.pop()?;
                    let target = self.top_index(0)?;
                    self.extend(target, vec![item])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    let target = self.top_index(0)?;
                    self.extend(target, items)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let target = self.top_index(0)?;
                    self.set_items(target, vec![(key, value)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    let target = self.top_index(0)?;
                    self.set_items(target, pairs)?;
                }
                b'c' => {
                    let module = self.line("global module")?;
                    let name = self.line("global name")?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop_value()?;
                    let module = self.pop_value()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.global(m, n)?,
                        _ => return Err(self.bad("STACK_GLOBAL needs two strings")),
                    }
                }
                b'R' | 0x81 => {
                    let args = self.pop_value()?;
                    let callable = self.pop_value()?;
                    self.reduce(callable, args)?;
                }
                b'b' => {
                    let state = self.pop_value()?;
                    let target = self.top_index(0)?;
                    self.build(target, state)?;
                }
                b'q' => {
                    let id = usize::from(self.take(1, "memo index")?[0]);
                    self.put(id)?;
                }
                b'r' => {
                    let id = self.len4("memo index")?;
                    self.put(id)?;
                }
                0x94 => self.put(self.memo.len())?,
                b'h' => {
                    let id = usize::from(self.take(1, "memo index")?[0]);
                    self.get(id)?;
                }
                b'j' => {
                    let id = self.len4("memo index")?;
                    self.get(id)?;
                }
                b'Q' => {
                    let pid = self.pop_value()?;
                    let storage = globals::storage(pid).map_err(|e| self.bad(&e))?;
                    self.push(storage);
                }
                _ => {
                    return Err(PickleError::Opcode {
                        opcode: op,
                        at: self.op_at,
                    })
                }
            }
        }
    }

    fn bad(&self, what: &str) -> PickleError {
        PickleError::Malformed {
            what: what.to_string(),
            at: self.op_at,
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], PickleError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(PickleError::Truncated { what, at: self.pos })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], PickleError> {
        let bytes = self.take(N, what)?;
        Ok(bytes.try_into().expect("take returns N bytes"))
    }

    fn len4(&mut self, what: &'static str) -> Result<usize, PickleError> {
        Ok(u32::from_le_bytes(self.array(what)?) as usize)
    }

    fn len8(&mut self, what: &'static str) -> Result<usize, PickleError> {
        let n = u64::from_le_bytes(self.array(what)?);
        usize::try_from(n).map_err(|_| PickleError::Truncated { what, at: self.pos })
    }

    fn line(&mut self, what: &'static str) -> Result<String, PickleError> {
        let rest = &self.bytes[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n');
        let end = end.ok_or(PickleError::Truncated { what, at: self.pos })?;
        let text = String::from_utf8(rest[..end].to_vec())
            .map_err(|_| self.bad("a global name that is not UTF-8"))?;
        self.pos += end + 1;
        Ok(text)
    }

    fn text(&mut self, n: usize) -> Result<(), PickleError> {
        let bytes = self.take(n, "str")?.to_vec();
        let text = String::from_utf8(bytes).map_err(|_| self.bad("a str that is not UTF-8"))?;
        self.push(Value::Str(text));
        Ok(())
    }

    fn raw(&mut self, n: usize) -> Result<(), PickleError> {
        let bytes = self.take(n, "bytes")?.to_vec();
        self.push(Value::Bytes(bytes));
        Ok(())
    }

    fn long(&mut self, n: usize) -> Result<(), PickleError> {
        let bytes = self.take(n, "long")?;
        if n > 8 {
            return Err(self.bad("an integer wider than 64 bits"));
        }
        let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
        let mut wide = [if negative { 0xff } else { 0 }; 8];
        wide[..n].copy_from_slice(bytes);
        self.push(Value::Int(i64::from_le_bytes(wide)));
        Ok(())
    }

    fn push(&mut self, value: Value) {
        self.stack.push(Node::Val(value));
    }

    fn pop(&mut self) -> Result<Node, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.bad("pop past a mark"));
        }
        self.stack.pop().ok_or_else(|| self.bad("stack underflow"))
    }

    fn pop_value(&mut self) -> Result<Value, PickleError> {
        let node = self.pop()?;
        self.resolve(&node, 0)
    }

    fn pop_mark(&mut self) -> Result<Vec<Node>, PickleError> {
        let mark = self.marks.pop().ok_or_else(|| self.bad("no mark"))?;
        if mark > self.stack.len() {
            return Err(self.bad("mark past the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn top_index(&self, below: usize) -> Result<usize, PickleError> {
        let len = self.stack.len();
        let floor = self.marks.last().copied().unwrap_or(0);
        len.checked_sub(below + 1)
            .filter(|&i| i >= floor)
            .ok_or_else(|| self.bad("stack underflow"))
    }

    fn dup(&mut self) -> Result<(), PickleError> {
        let i = self.top_index(0)?;
        // Share, do not copy: a DUP chain must not multiply memory.
        let id = usize::MAX - self.memo.len();
        let node = std::mem::replace(&mut self.stack[i], Node::Ref(id));
        self.memo.insert(id, node);
        self.stack.push(Node::Ref(id));
        Ok(())
    }

    fn put(&mut self, id: usize) -> Result<(), PickleError> {
        let i = self.top_index(0)?;
        let node = match &self.stack[i] {
            Node::Ref(other) => Node::Ref(*other),
            _ => std::mem::replace(&mut self.stack[i], Node::Ref(id)),
        };
        self.memo.insert(id, node);
        Ok(())
    }

    fn get(&mut self, id: usize) -> Result<(), PickleError> {
        if !self.memo.contains_key(&id) {
            return Err(self.bad(&format!("memo entry {id} was never stored")));
        }
        self.stack.push(Node::Ref(id));
        Ok(())
    }

    fn global(&mut self, module: String, name: String) -> Result<(), PickleError> {
        // Protocol 2 spells Python 3's modules by their Python 2 names (pickle's fix_imports).
        let module = match module.as_str() {
            "__builtin__" => "builtins".to_string(),
            "copy_reg" => "copyreg".to_string(),
            _ => module,
        };
        if !globals::allowed(&module, &name, self.policy) {
            return Err(PickleError::ForbiddenGlobal { module, name });
        }
        self.push(Value::Global { module, name });
        Ok(())
    }

    fn reduce(&mut self, callable: Value, args: Value) -> Result<(), PickleError> {
        let Value::Global { module, name } = callable else {
            return Err(self.bad(&format!("a call of a {}", callable.kind())));
        };
        let Some(builtin) = globals::builtin(&module, &name) else {
            return Err(PickleError::ForbiddenCall { module, name });
        };
        let Value::Tuple(args) = args else {
            return Err(self.bad("call arguments that are not a tuple"));
        };
        let result = globals::call(builtin, args).map_err(|e| self.bad(&e))?;
        if builtin == Builtin::OrderedDict || builtin == Builtin::Set {
            // Filled by SETITEMS/ADDITEMS next: keep it a mutable container.
            self.stack.push(to_node(result)?);
        } else {
            self.push(result);
        }
        Ok(())
    }

    fn pairs(&self, items: Vec<Node>) -> Result<Vec<(Node, Node)>, PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.bad("an odd number of items for a dict"));
        }
        let mut it = items.into_iter();
        let mut pairs = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok(pairs)
    }

    /// The container at stack index `i`, following memo references.
    fn container(&mut self, i: usize) -> Result<&mut Node, PickleError> {
        let mut id = match &self.stack[i] {
            Node::Ref(id) => *id,
            _ => return Ok(&mut self.stack[i]),
        };
        for _ in 0..MAX_DEPTH {
            match self.memo.get(&id) {
                Some(Node::Ref(next)) => id = *next,
                Some(_) => return Ok(self.memo.get_mut(&id).expect("present")),
                None => return Err(self.bad("a reference to nothing")),
            }
        }
        Err(PickleError::TooLarge {
            limit: "the reference chain limit",
        })
    }

    fn extend(&mut self, i: usize, items: Vec<Node>) -> Result<(), PickleError> {
        let at = self.op_at;
        let deepest = items.iter().map(Node::depth).max().unwrap_or(0);
        match self.container(i)? {
            Node::Seq(Seq::List | Seq::Set, list, depth) => {
                *depth = nested((*depth).max(1 + deepest))?;
                list.extend(items);
                Ok(())
            }
            _ => Err(PickleError::Malformed {
                what: "append to something that is not a list or set".into(),
                at,
            }),
        }
    }

    fn set_items(&mut self, i: usize, pairs: Vec<(Node, Node)>) -> Result<(), PickleError> {
        let at = self.op_at;
        let deepest = pairs.iter().map(|(k, v)| k.depth().max(v.depth())).max();
        match self.container(i)? {
            Node::Dict(dict, depth) => {
                *depth = nested((*depth).max(1 + deepest.unwrap_or(0)))?;
                dict.extend(pairs);
                Ok(())
            }
            _ => Err(PickleError::Malformed {
                what: "set an item of something that is not a dict".into(),
                at,
            }),
        }
    }

    fn build(&mut self, i: usize, state: Value) -> Result<(), PickleError> {
        let target = self.container(i)?.clone();
        let value = self.resolve(&target, 0)?;
        let built = globals::build(value, state).map_err(|e| self.bad(&e))?;
        *self.container(i)? = to_node(built)?;
        Ok(())
    }

    /// Expands references into a plain value, charging every node against the budget.
    fn resolve(&mut self, node: &Node, depth: usize) -> Result<Value, PickleError> {
        if depth > MAX_DEPTH {
            return Err(PickleError::TooLarge {
                limit: "256 nested levels",
            });
        }
        self.budget = self.budget.checked_sub(1).ok_or(PickleError::TooLarge {
            limit: "4 million values",
        })?;
        let items_of = |m: &mut Self, items: &[Node]| -> Result<Vec<Value>, PickleError> {
            items.iter().map(|n| m.resolve(n, depth + 1)).collect()
        };
        Ok(match node {
            Node::Val(v) => v.clone(),
            Node::Seq(Seq::List, items, _) => Value::List(items_of(self, items)?),
            Node::Seq(Seq::Tuple, items, _) => Value::Tuple(items_of(self, items)?),
            Node::Seq(Seq::Set, items, _) => Value::Set(items_of(self, items)?),
            Node::Dict(pairs, _) => Value::Dict(
                pairs
                    .iter()
                    .map(|(k, v)| Ok((self.resolve(k, depth + 1)?, self.resolve(v, depth + 1)?)))
                    .collect::<Result<_, PickleError>>()?,
            ),
            Node::Ref(id) => {
                let target = self
                    .memo
                    .get(id)
                    .cloned()
                    .ok_or_else(|| self.bad("a reference to nothing"))?;
                self.resolve(&target, depth + 1)?
            }
        })
    }
}

/// A plain value as a node whose containers can still be filled (one level: the items stay
/// plain values, which [`Machine::resolve`] kept within the depth limit).
fn to_node(value: Value) -> Result<Node, PickleError> {
    match value {
        Value::List(items) => seq(Seq::List, items.into_iter().map(Node::Val).collect()),
        Value::Set(items) => seq(Seq::Set, items.into_iter().map(Node::Val).collect()),
        Value::Dict(pairs) => dict(
            pairs
                .into_iter()
                .map(|(k, v)| (Node::Val(k), Node::Val(v)))
                .collect(),
        ),
        other => Ok(Node::Val(other)),
    }
}
