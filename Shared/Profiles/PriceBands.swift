/// The price bands of `UserProfile.price_bands`: the feature service counts a user's
/// interactions per band, and recommend boosts items in the bands a user shops in.
public enum PriceBands {
    /// Upper bounds of the bands: under 10, 10–50, 50–200, 200–1,000, 1,000 and up.
    public static let edges: [Double] = [10, 50, 200, 1000]

    /// How many bands there are.
    public static var count: Int { edges.count + 1 }

    /// The band of `price`.
    public static func band(_ price: Double) -> Int {
        edges.firstIndex { price < $0 } ?? edges.count
    }
}
