// Placement: which node each non-pinned connector should run on.

#include <gtest/gtest.h>

#include "supervision/placements.hpp"

#include "manifold/supervision/placement.hpp"

namespace {

using namespace manifold;
using namespace manifold::supervision;

using manifold::test::pinned;
using manifold::test::selector;

placement_member member(const std::string& id, const std::string& role, bool draining = false) {
  return placement_member{id, {{"role", role}}, draining};
}

const auto& server = manifold::test::server_role;

TEST(placement, new_connectors_go_to_the_least_loaded_node_ties_by_id) {
  placement_input in;
  in.connectors = {selector("w", server), selector("x", server), selector("y", server)};
  in.members = {member("c", "server"), member("b", "server"), member("a", "edge")};
  auto r = place(in);
  EXPECT_EQ(r.assignment, (std::map<std::string, std::string>{{"w", "b"}, {"x", "c"}, {"y", "b"}}));
  EXPECT_TRUE(r.unplaced.empty());
}

TEST(placement, pinned_connectors_are_not_placed_but_count_as_load) {
  placement_input in;
  in.connectors = {pinned("p", "a"), selector("x", server)};
  in.members = {member("a", "server"), member("b", "server")};
  auto r = place(in);
  EXPECT_EQ(r.assignment.count("p"), 0u);
  EXPECT_EQ(r.assignment.at("x"), "b");
}

TEST(placement, a_valid_current_assignment_is_kept_even_when_unbalanced) {
  placement_input in;
  in.connectors = {selector("x", server), selector("y", server)};
  in.members = {member("a", "server"), member("b", "server")};
  in.current = {{"x", "b"}, {"y", "b"}};
  EXPECT_EQ(place(in).assignment, in.current);
}

TEST(placement, failover_connector_leaves_a_dead_node) {
  placement_input in;
  in.connectors = {selector("x", server)};
  in.members = {member("a", "server")};
  in.current = {{"x", "b"}};
  auto r = place(in);
  EXPECT_EQ(r.assignment.at("x"), "a");
  EXPECT_TRUE(r.unplaced.empty());
}

TEST(placement, connector_without_failover_waits_for_its_dead_node) {
  placement_input in;
  in.connectors = {selector("x", server, false)};
  in.members = {member("a", "server")};
  in.current = {{"x", "b"}};
  auto r = place(in);
  EXPECT_EQ(r.assignment.at("x"), "b");
  EXPECT_NE(r.unplaced.at("x").find("'b' is not alive"), std::string::npos) << r.unplaced.at("x");
}

TEST(placement, draining_node_gives_failover_connectors_away_and_takes_none) {
  placement_input in;
  in.connectors = {selector("x", server), selector("y", server, false), selector("z", server)};
  in.members = {member("a", "server", true), member("b", "server")};
  in.current = {{"x", "a"}, {"y", "a"}};
  auto r = place(in);
  EXPECT_EQ(r.assignment.at("x"), "b");
  EXPECT_EQ(r.assignment.at("y"), "a"); // failover: false stays until moved explicitly
  EXPECT_EQ(r.assignment.at("z"), "b");
}

TEST(placement, a_node_that_no_longer_matches_loses_its_connector) {
  placement_input in;
  in.connectors = {selector("x", server, false)};
  in.members = {member("a", "edge"), member("b", "server")};
  in.current = {{"x", "a"}};
  EXPECT_EQ(place(in).assignment.at("x"), "b");
}

TEST(placement, unplaced_connectors_carry_a_reason) {
  placement_input in;
  in.connectors = {selector("x", server)};
  EXPECT_EQ(place(in).unplaced.at("x"), "no node is alive");

  in.members = {member("a", "edge")};
  EXPECT_EQ(place(in).unplaced.at("x"), "no alive node matches role=server");

  in.members = {member("a", "server", true), member("b", "server", true)};
  EXPECT_EQ(place(in).unplaced.at("x"),
            "every alive node matching role=server is draining (a, b)");
  EXPECT_EQ(place(in).assignment.count("x"), 0u);
}

TEST(placement, a_valid_move_wins_over_stickiness) {
  placement_input in;
  in.connectors = {selector("x", server)};
  in.members = {member("a", "server"), member("b", "server")};
  in.current = {{"x", "a"}};
  in.moves = {{"x", "b"}};
  auto r = place(in);
  EXPECT_EQ(r.assignment.at("x"), "b");
  EXPECT_TRUE(r.refused_moves.empty());
}

TEST(placement, a_move_to_an_unfit_node_is_refused_with_a_reason_and_placement_goes_on) {
  placement_input in;
  in.connectors = {selector("x", server)};
  in.members = {member("a", "server"), member("b", "server", true), member("e", "edge")};
  in.current = {{"x", "a"}};

  in.moves = {{"x", "b"}};
  auto r = place(in);
  EXPECT_EQ(r.assignment.at("x"), "a");
  EXPECT_EQ(r.refused_moves.at("x"), "node 'b' is draining");

  in.moves = {{"x", "e"}};
  EXPECT_NE(place(in).refused_moves.at("x").find("does not match"), std::string::npos);

  in.moves = {{"x", "ghost"}};
  EXPECT_EQ(place(in).refused_moves.at("x"), "node 'ghost' is not an alive member of the cluster");
}

TEST(placement, moving_a_pinned_connector_is_refused) {
  auto why = move_refusal(pinned("p", "a"), "b", {member("b", "server")});
  EXPECT_NE(why.find("pinned to node 'a'"), std::string::npos) << why;
  EXPECT_TRUE(move_refusal(selector("x", server), "b", {member("b", "server")}).empty());
}

TEST(placement, result_does_not_depend_on_member_order) {
  placement_input in;
  in.connectors = {selector("x", {}), selector("y", {}), selector("z", {})};
  in.members = {member("c", "x"), member("a", "x"), member("b", "x")};
  auto first = place(in);
  std::swap(in.members[0], in.members[2]);
  EXPECT_EQ(place(in).assignment, first.assignment);
  EXPECT_EQ(first.assignment.at("x"), "a");
}

} // namespace
