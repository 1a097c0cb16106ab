"""Doc comments of other languages' code: the comment right above a declaration, by the name it declares."""

import pytest

from gpt.doc_comments import doc_comments
from gpt.docstrings import documented
from gpt.qa import derive_pairs
from gpt.retrieval import PassageIndex

TYPESCRIPT = '''/** Copyright 2026 Someone: a header above an import, not documentation. */
import { get } from "./http";

/**
 * Fetch a user's profile from the API.
 * @param id the user's id
 */
export async function fetchProfile(id: string): Promise<Profile> {
  return get(`/users/${id}`);
}

/** A user as the API returns it, see {@link fetchProfile}. */
export interface Profile {
  name: string;
}

/**
 * Add two numbers.
 */
export const add = (a: number, b: number) => a + b;

/** Not documentation: a statement follows. */
console.log(add(1, 2));

class Cache {
  /**
   * Store a value under a key.
   */
  set(key, value) {
    /** Nor this: a call in a statement. */
    return this.map.set(key, value);
  }

  /** Build an empty cache. */
  constructor() {}

  /** Private by its name. */
  _evict() {}
}
'''
GO = '''// Package server serves things.
package server

// Server listens for connections and answers them.
type Server struct{}

// A Handler answers one request.
type Handler interface{}

// Serve accepts incoming connections on the listener.
// It blocks until the listener closes.
func (s *Server) Serve(l net.Listener) error {
	return nil
}

// TODO: not documentation, it does not open with the name.
func helper() {}
'''
RUST = '''//! A crate for points.

/// A point in the plane.
#[derive(Debug, Clone)]
pub struct Point { x: f64, y: f64 }

impl Point {
    /// Create a point from its coordinates.
    ///
    /// # Examples
    /// ```
    /// let p = Point::new(1.0, 2.0);
    /// ```
    pub fn new(x: f64, y: f64) -> Self { Point { x, y } }
}
'''
JAVA = '''package org.example;

/**
 * A last-in, first-out stack of items.
 * <p>
 * Not thread-safe.
 */
public class Stack<T> {
    /**
     * Returns the item on top without removing it, or {@code null} if empty.
     *
     * @return the top item
     */
    @Override
    public T peek() { return null; }
}
'''
CSHARP = '''/// <summary>
/// Greets people by name, see <see cref="Hello"/>.
/// </summary>
public sealed class Greeter {
    /// <summary>Say hello to someone.</summary>
    /// <param name="name">who</param>
    public string Hello(string name) => $"Hello {name}";
}
'''
C = '''/**
 * Return the larger of \\p a and \\p b.
 * \\param a first
 */
static int max_int(int a, int b) { return a > b ? a : b; }

/// Clamp a value into [@p lo, @p hi].
int clamp(int x, int lo, int hi);

/** \\brief Swap two integers.
 *  \\details Through their addresses. */
void swap(int *a, int *b);
'''


@pytest.mark.parametrize("source, text, expected", [
    ("lib.ts", TYPESCRIPT, [("fetchProfile", "function", "Fetch a user's profile from the API.", 8),
                            ("Profile", "class", "A user as the API returns it, see fetchProfile.", 13),
                            ("add", "function", "Add two numbers.", 20),
                            ("set", "function", "Store a value under a key.", 29)]),
    ("server.go", GO, [("Server", "class", "Server listens for connections and answers them.", 5),
                       ("Handler", "class", "A Handler answers one request.", 8),
                       ("Serve", "function", "Serve accepts incoming connections on the listener. It blocks until the "
                                             "listener closes.", 12)]),
    ("point.rs", RUST, [("Point", "class", "A point in the plane.", 5),
                        ("new", "function", "Create a point from its coordinates.", 14)]),
    ("Stack.java", JAVA, [("Stack", "class", "A last-in, first-out stack of items.", 8),
                          ("peek", "function", "Returns the item on top without removing it, or null if empty.", 15)]),
    ("Greeter.cs", CSHARP, [("Greeter", "class", "Greets people by name, see Hello.", 4),
                            ("Hello", "function", "Say hello to someone.", 7)]),
    ("util.c", C, [("max_int", "function", "Return the larger of a and b.", 5),
                   ("clamp", "function", "Clamp a value into [lo, hi].", 8),
                   ("swap", "function", "Swap two integers. Through their addresses.", 12)]),
])
def test_each_documented_declaration_by_its_name(source, text, expected):
    assert [(d.name, d.kind, d.summary, d.line) for d in documented(text, source)] == expected


def test_comments_in_other_files_and_forms_are_not_documentation():
    assert doc_comments(TYPESCRIPT, "notes.md") == [] and doc_comments(RUST, "point.py") == []
    assert doc_comments("/// Three slashes are only a comment in JavaScript.\nfunction f() {}\n", "f.js") == []
    assert doc_comments("// Plain comments are not JSDoc.\nfunction f() {}\n", "f.js") == []
    assert doc_comments("/** Unclosed at the end of the file", "f.js") == []
    assert doc_comments("/**/\nfunction f() {}\n/*** a banner ***/\nfunction g() {}\n", "f.js") == []


def test_a_doc_comment_gives_questions_and_a_titled_passage():
    assert [(p.question, p.answer) for p in derive_pairs(GO, "server.go", phrasings=1)] == [
        ("What is Server?", "Server listens for connections and answers them."),
        ("What is Handler?", "A Handler answers one request."),
        ("What does Serve do?", "Serve accepts incoming connections on the listener. It blocks until the listener "
                                "closes.")]
    peek = PassageIndex.build([("Stack.java", JAVA)]).search("What does peek do?", k=1)[0]
    assert peek.text == "peek\nReturns the item on top without removing it, or null if empty."  # no "@return"
    best = PassageIndex.build([("server.go", GO)]).search("What does Serve do?", k=1)[0]
    assert (best.titles, best.line, best.text[best.body:]) == (
        ("Serve",), 12, "Serve accepts incoming connections on the listener.\nIt blocks until the listener closes.")
