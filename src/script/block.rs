//! Whether an input is a whole block: the REPL's multi-line input reads
//! another line while it is not, and the kernel answers Jupyter's
//! `is_complete_request` with it (one detection for both).
//!
//! ```text
//! fn f(a) {        -> Incomplete (a brace is open)
//! let s = "open    -> Incomplete (a string is open)
//! x + 1 \         -> Incomplete (a trailing backslash continues the line)
//! let m = #{a: 1}; -> Complete
//! }                -> Invalid (more closing than opening brackets)
//! ```

/// Whether an input is a whole block (see [`block_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockState {
    /// Ready to run.
    Complete,
    /// A bracket, brace, parenthesis or string is still open, or the input
    /// ends with `\`: more lines are needed.
    Incomplete,
    /// More closing than opening brackets: running it shows a syntax error.
    Invalid,
}

/// The block detection of the REPL's multi-line input (and the kernel's
/// `is_complete_request`): counts brackets outside strings and `//`
/// comments.
pub fn block_state(input: &str) -> BlockState {
    if input.trim_end().ends_with('\\') {
        return BlockState::Incomplete;
    }
    let mut depth: i64 = 0;
    let mut min_depth: i64 = 0;
    let mut chars = input.chars().peekable();
    let mut in_str: Option<char> = None;
    while let Some(c) = chars.next() {
        match in_str {
            Some(q) => {
                if c == '\\' && q == '"' {
                    chars.next();
                } else if c == q {
                    in_str = None;
                }
            }
            None => match c {
                '"' | '`' => in_str = Some(c),
                '/' if chars.peek() == Some(&'/') => {
                    for n in chars.by_ref() {
                        if n == '\n' {
                            break;
                        }
                    }
                }
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => {
                    depth -= 1;
                    min_depth = min_depth.min(depth);
                }
                _ => {}
            },
        }
    }
    if in_str.is_some() {
        BlockState::Incomplete
    } else if min_depth < 0 {
        BlockState::Invalid
    } else if depth > 0 {
        BlockState::Incomplete
    } else {
        BlockState::Complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_strings_and_comments() {
        assert_eq!(block_state("fn f(a) {"), BlockState::Incomplete);
        assert_eq!(block_state("let s = \"open"), BlockState::Incomplete);
        assert_eq!(block_state("x + 1 \\"), BlockState::Incomplete);
        assert_eq!(block_state("fn f(a) { a } // {"), BlockState::Complete);
        assert_eq!(block_state("let s = \"{\";"), BlockState::Complete);
        assert_eq!(block_state("}"), BlockState::Invalid);
        assert_eq!(block_state("let m = #{a: [1, (2)]};"), BlockState::Complete);
    }
}
