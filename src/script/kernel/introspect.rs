//! Completion (Tab), inspection (Shift-Tab) and `is_complete` from the
//! session: the REPL's completion candidates, `:help` text and block
//! detection, with Jupyter's cursor positions (Unicode code points)
//! converted to and from byte offsets.

use jupyter_protocol::{
    CompleteReply, InspectReply, IsCompleteReply, IsCompleteReplyStatus, Media, MediaType,
    ReplyStatus,
};

use crate::script::repl::{block_state, BlockState, Session};

/// The byte offset of code point `cursor` in `s` (clamped to the end).
pub fn byte_offset(s: &str, cursor: usize) -> usize {
    s.char_indices()
        .nth(cursor)
        .map(|(b, _)| b)
        .unwrap_or(s.len())
}

/// The code point index of byte offset `byte` in `s`.
pub fn char_offset(s: &str, byte: usize) -> usize {
    s.get(..byte.min(s.len()))
        .map(|h| h.chars().count())
        .unwrap_or_else(|| s.chars().count())
}

/// `complete_reply`: the session's functions, methods (after `x.`) and
/// variables that start with the word before the cursor.
pub fn complete(session: &Session, code: &str, cursor: usize) -> CompleteReply {
    let b = byte_offset(code, cursor);
    let (start, matches) = session.complete(code, b);
    CompleteReply {
        matches,
        cursor_start: char_offset(code, start),
        cursor_end: char_offset(code, b),
        status: ReplyStatus::Ok,
        ..CompleteReply::default()
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == ':'
}

/// The name Shift-Tab asks about: the word under (or just before) the
/// cursor, else the function whose call the cursor is in (`fit(model, |`).
/// With a receiver (`model.fit`) it is `Type.method` when the receiver is
/// a variable of the session.
pub fn name_at(session: &Session, code: &str, cursor: usize) -> Option<String> {
    let b = byte_offset(code, cursor);
    let (head, tail) = code.split_at(b);
    let before: String = head
        .chars()
        .rev()
        .take_while(|c| is_word(*c))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let after: String = tail.chars().take_while(|c| is_word(*c)).collect();
    let mut start = b - before.len();
    let mut word = format!("{before}{after}").trim_matches(':').to_string();
    if word.is_empty() {
        // Inside a call: the innermost unclosed '(' before the cursor.
        let mut depth = 0i32;
        let mut open = None;
        for (i, c) in head.char_indices().rev() {
            match c {
                ')' => depth += 1,
                '(' if depth == 0 => {
                    open = Some(i);
                    break;
                }
                '(' => depth -= 1,
                _ => {}
            }
        }
        let open = open?;
        let callee: String = head[..open]
            .chars()
            .rev()
            .take_while(|c| is_word(*c))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        start = open - callee.len();
        word = callee.trim_matches(':').to_string();
    }
    if word.is_empty() {
        return None;
    }
    // `x.method`: name the method by the receiver's type.
    if let Some(recv) = code[..start].strip_suffix('.') {
        let var = crate::script::util::trailing_identifier(recv);
        if let Some(v) = session.var(var) {
            let ty = session.engine().map_type_name(v.type_name()).to_string();
            return Some(format!("{ty}.{word}"));
        }
    }
    Some(word)
}

/// The inspection text for the name at the cursor: a variable's type and
/// value followed by its type's help, or the `:help` text of a function,
/// object or module; `None` when nothing is known by that name.
pub fn inspect_text(session: &Session, code: &str, cursor: usize) -> Option<String> {
    let name = name_at(session, code, cursor)?;
    if let Some(v) = session.var(&name) {
        let ty = session.engine().map_type_name(v.type_name()).to_string();
        let value = crate::script::display_value(session.engine(), &v);
        let mut s = format!("{name}: {ty}\n{value}");
        if let Some(h) = session.help().lookup(&ty) {
            s.push_str("\n\n");
            s.push_str(&h);
        }
        return Some(s);
    }
    session.help().lookup(&name).or_else(|| {
        // `Type.method` unknown as such: the method's help on any type.
        let (_, method) = name.split_once('.')?;
        session.help().lookup(method)
    })
}

/// `inspect_reply` (found, and the text as `text/plain`).
pub fn inspect(session: &Session, code: &str, cursor: usize) -> InspectReply {
    match inspect_text(session, code, cursor) {
        Some(text) => InspectReply {
            found: true,
            data: Media::new(vec![MediaType::Plain(text)]),
            ..InspectReply::default()
        },
        None => InspectReply::default(),
    }
}

/// `is_complete_reply` from the REPL's block detection.
pub fn is_complete(code: &str) -> IsCompleteReply {
    match block_state(code) {
        BlockState::Complete => IsCompleteReply::complete(),
        BlockState::Incomplete => {
            IsCompleteReply::new(IsCompleteReplyStatus::Incomplete, "    ".into())
        }
        BlockState::Invalid => IsCompleteReply::invalid(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_code_points() {
        let s = "let é = 1; x";
        assert_eq!(byte_offset(s, 5), 6);
        assert_eq!(char_offset(s, 6), 5);
        assert_eq!(byte_offset(s, 100), s.len());
    }
}
